"""For tests/python/test_error_log.py: logging_app's actions from an ASGI application (there
is no ``wsgi.errors`` in ASGI: ``errors`` is not offered)."""

import os
from urllib.parse import parse_qs

from logging_app import write_everywhere


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    token = parse_qs(scope.get("query_string", b"").decode()).get("t", ["-"])[0]
    write_everywhere(scope["path"].strip("/"), token)
    body = str(os.getpid()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
