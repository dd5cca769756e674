"""Records which process imported it, and reports that with the collector's state.

With ``--preload`` the master imports this module before forking, so every worker reports
the master's pid as the import pid; without it each worker imports it itself. At import it
appends its pid to ``$PRELOAD_PROBE_LOG`` (when set), so a test can count the imports, and
it calls ``gc.disable()`` when ``$PRELOAD_PROBE_GC_DISABLE`` is set (an application's own
choice, which preloading must keep). ``?sleep=S`` holds the request S seconds, so concurrent
requests reach every worker."""

import gc
import json
import os
import time
from urllib.parse import parse_qs

IMPORT_PID = os.getpid()

if os.environ.get("PRELOAD_PROBE_LOG"):
    with open(os.environ["PRELOAD_PROBE_LOG"], "a") as f:
        f.write(f"{IMPORT_PID}\n")

if os.environ.get("PRELOAD_PROBE_GC_DISABLE"):
    gc.disable()


def app(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "sleep" in query:
        time.sleep(min(float(query["sleep"][0]), 2.0))
    body = json.dumps(
        {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "import_pid": IMPORT_PID,
            "freeze_count": gc.get_freeze_count(),
            "gc_enabled": gc.isenabled(),
            "gc_threshold": list(gc.get_threshold()),
            "multiprocess": environ["wsgi.multiprocess"],
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
