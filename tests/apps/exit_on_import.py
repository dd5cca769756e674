"""An app module whose import ends the process with exit code 3, as a C extension calling
``exit(3)`` while it loads would (tests/python/test_supervision.py): a worker that exits 3
before it serves has failed to boot, which stops the master with that code."""

import os

os._exit(3)


def app(environ, start_response):  # pragma: no cover - never reached
    start_response("200 OK", [])
    return [b""]
