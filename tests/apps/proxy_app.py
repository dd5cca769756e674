"""What the application sees of the client, the scheme and the host (tests/python/test_proxy.py):
``wsgi`` and ``asgi`` answer with a JSON object of the relevant environ keys or scope entries;
over a WebSocket, ``asgi`` sends that object as its one text message."""

from __future__ import annotations

import json

WSGI_KEYS = (
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "wsgi.url_scheme",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "HTTP_X_REQUEST_ID",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_FORWARDED",
)


def wsgi(environ, start_response):
    seen = {k: environ.get(k) for k in WSGI_KEYS}
    headers = [("Content-Type", "application/json")]
    if environ.get("PATH_INFO") == "/own-id":
        headers.append(("X-Request-ID", "set-by-app"))
    start_response("200 OK", headers)
    return [json.dumps(seen).encode()]


def _scope_view(scope) -> dict:
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    return {
        "client": scope.get("client"),
        "scheme": scope["scheme"],
        "server": scope.get("server"),
        "host": [v for k, v in headers if k == "host"],
        "request_id": [v for k, v in headers if k == "x-request-id"],
    }


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    view = _scope_view(scope)
    if scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(view).encode()})
        return
    first = await receive()
    assert first["type"] == "websocket.connect", first
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(view)})
    await send({"type": "websocket.close"})
