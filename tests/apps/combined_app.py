"""A WSGI and an ASGI application side by side (`bourbon combined_app:wsgi --asgi
combined_app:asgi`), each saying which one answered and on which thread."""

from __future__ import annotations

import threading


def wsgi(environ, start_response):
    body = f"wsgi {environ['PATH_INFO']} {threading.current_thread().name}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "asgi " + (message.get("text") or "")})
    body = f"asgi {scope['path']} {threading.current_thread().name}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
