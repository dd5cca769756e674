"""An ASGI application exercising WebSockets (tests/python/test_asgi_websocket.py): behaviour
by path; what the application saw goes to the file named by ASGI_EVENTS, one JSON per line."""

from __future__ import annotations

import asyncio
import json
import os

EVENTS_FILE = os.environ.get("ASGI_EVENTS")


def note(**event) -> None:
    if EVENTS_FILE:
        with open(EVENTS_FILE, "a") as f:
            f.write(json.dumps(event) + "\n")
        # Also on stdout (the server's log), which a test can wait for without polling.
        # One write(2) per line: workers share the pipe (see asgi_app.py).
        os.write(1, f"asgi-event {event['event']}\n".encode())


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/stream":
            # Two parts apart in time and no length: a chunked response.
            await send({"type": "http.response.body", "body": b"plain", "more_body": True})
            await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": b" http"})
            return
        await send({"type": "http.response.body", "body": b"plain http"})
        return
    assert scope["type"] == "websocket"
    path = scope["path"]
    first = await receive()
    assert first["type"] == "websocket.connect", first
    if path == "/refuse":
        await send({"type": "websocket.close"})
        return
    if path == "/deny":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-why", b"token")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"no token", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"!"})
        return
    if path == "/raise":
        raise RuntimeError("boom before accept")
    if path == "/return":
        return
    if path == "/scope":
        await send({"type": "websocket.accept"})
        out = {
            k: v
            for k, v in scope.items()
            if k not in ("headers", "raw_path", "query_string", "state", "extensions", "asgi")
        }
        out["query_string"] = scope["query_string"].decode()
        out["extensions"] = sorted(scope.get("extensions", {}))
        out["headers"] = [[n.decode(), v.decode()] for n, v in scope["headers"]]
        await send({"type": "websocket.send", "text": json.dumps(out)})
        await send({"type": "websocket.close", "code": 1000})
        return
    accept = {"type": "websocket.accept", "headers": [(b"x-accepted", b"yes")]}
    if scope.get("subprotocols"):
        accept["subprotocol"] = scope["subprotocols"][-1]
    await send(accept)
    if path == "/close-now":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye from app"})
        note(event="closed-by-app")
        return
    if path == "/greet-then-raise":
        await send({"type": "websocket.send", "text": "hello"})
        raise RuntimeError("boom after accept")
    if path == "/push":
        # Sends until the client stops reading: send() must then wait (bounded memory).
        sent = 0
        try:
            for _ in range(20000):
                await send({"type": "websocket.send", "bytes": b"z" * 65536})
                sent += 1
                note(event="pushed", n=sent) if sent % 100 == 0 else None
        except OSError:
            note(event="push-stopped", n=sent)
        return
    # echo
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            note(event="disconnect", code=message["code"], reason=message.get("reason", ""))
            return
        if message.get("text") is not None:
            if message["text"] == "close please":
                await send({"type": "websocket.close", "code": 1000, "reason": "as asked"})
                continue
            if message["text"] == "slow":
                await asyncio.sleep(0.2)
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
