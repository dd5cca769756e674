"""For tests/python/test_error_log.py: logging_app's actions from an ASGI application (there
is no ``wsgi.errors`` in ASGI: ``errors`` is not offered).

A WebSocket at any path is accepted, does the path's action, sends its pid, and then raises
``RuntimeError("ws-boom TOKEN")``.
"""

import os
from urllib.parse import parse_qs

from logging_app import write_everywhere


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        token = parse_qs(scope.get("query_string", b"").decode()).get("t", ["-"])[0]
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        write_everywhere(scope["path"].strip("/"), token)
        await send({"type": "websocket.send", "text": str(os.getpid())})
        raise RuntimeError(f"ws-boom {token}")
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
