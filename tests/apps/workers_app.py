"""Reports which worker process answered and what the environ says about processes."""

import json
import os


def app(environ, start_response):
    body = json.dumps(
        {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "multiprocess": environ["wsgi.multiprocess"],
            "multithread": environ["wsgi.multithread"],
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
