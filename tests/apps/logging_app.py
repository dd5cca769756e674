"""For tests/python/test_error_log.py: a WSGI application that writes to every place an
application writes diagnostics.

``GET /<action>?t=TOKEN`` (each line carries the token, so a test finds its own lines):

- ``errors``: ``wsgi.errors``, a one-line ``print`` and a two-line write;
- ``log``: the ``logging`` logger ``app.log`` at debug, info and warning, and an exception;
- ``print``: ``print()`` to stdout and stderr, ``os.write`` to descriptors 1 and 2 (as a C
  extension would) and a subprocess writing to both;
- ``raise``: an exception out of the application (a 500 and a traceback in the error log).

Answers with the worker's pid. At import it prints ``imported in PID`` (the master with
``--preload``).
"""

import logging
import os
import subprocess
import sys
from urllib.parse import parse_qs

log = logging.getLogger("app.log")
print(f"imported in {os.getpid()}", flush=True)


def write_everywhere(action: str, token: str, errors=None) -> None:
    if action == "errors":
        print(f"errors-line {token}", file=errors)
        errors.write(f"errors-first {token}\nerrors-second {token}\n")
        errors.flush()
    elif action == "log":
        log.debug("debug-record %s", token)
        log.info("info-record %s", token)
        log.warning("warning-record %s", token)
        try:
            raise ValueError(f"logged-boom {token}")
        except ValueError:
            log.exception("exception-record %s", token)
    elif action == "print":
        print(f"print-stdout {token}")
        print(f"print-stderr {token}", file=sys.stderr)
        os.write(1, f"fd1-write {token}\n".encode())
        os.write(2, f"fd2-write {token}\n".encode())
        subprocess.run(
            ["/bin/sh", "-c", f"echo child-stdout {token}; echo child-stderr {token} >&2"],
            check=True,
            timeout=30,
        )
    elif action == "raise":
        raise RuntimeError(f"app-boom {token}\nsecond line")


def app(environ, start_response):
    token = parse_qs(environ.get("QUERY_STRING", "")).get("t", ["-"])[0]
    write_everywhere(environ["PATH_INFO"].strip("/"), token, environ["wsgi.errors"])
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
