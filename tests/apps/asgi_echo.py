"""A bare ASGI 3 application for the Autobahn conformance run: it accepts every WebSocket,
sends each message back as it came (text as text, bytes as bytes) and returns when the client
disconnects, so every verdict in the report is the server's. Plain HTTP gets 200 "ok"; the
lifespan protocol is answered (startup and shutdown complete) so servers that run it do not
log a failure.

No framework and no imports beyond the standard library: it must run unchanged under bourbon
and under another ASGI server (uvicorn) when the harness itself is checked.
"""


async def app(scope, receive, send):
    kind = scope["type"]
    if kind == "websocket":
        await websocket_echo(receive, send)
    elif kind == "http":
        await http_ok(receive, send)
    elif kind == "lifespan":
        await lifespan(receive, send)
    else:
        raise RuntimeError(f"unknown scope type {kind!r}")


async def websocket_echo(receive, send):
    while True:
        event = await receive()
        kind = event["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            # Exactly one of the two keys is set (and not None) per the ASGI spec.
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})
        elif kind == "websocket.disconnect":
            return


async def http_ok(receive, send):
    # Drain the request body so the server is not left holding it.
    while True:
        event = await receive()
        if event["type"] == "http.disconnect":
            return
        if not event.get("more_body", False):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def lifespan(receive, send):
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
