"""The ASGI app of bench/run.py's ASGI cells (``--asgi-only``): one ASGI 3 callable for every
server, so each runs the same Python.

- ``http``: any path answers 200, ``text/plain``, ``Hello, World!`` (13 bytes, the same body as
  the WSGI hello of ``micro.py``). The request body, if any, is read to its end first, as an
  app must before it answers (ASGI spec: ``http.request`` until ``more_body`` is false).
- ``websocket``: accepts (no subprotocol) and echoes every message as it came, text as text,
  bytes as bytes, until the client disconnects.
- ``lifespan``: completes startup and shutdown, so servers that run the lifespan protocol
  (uvicorn, Granian, bourbon) go through it, and one that does not (Daphne) is unaffected.
"""

HELLO = b"Hello, World!"  # 13 bytes
HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
HELLO_BODY = {"type": "http.response.body", "body": HELLO}


async def http(scope, receive, send):
    if scope["method"] not in ("GET", "HEAD"):
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # http.disconnect
            more = message.get("more_body", False)
    await send(HELLO_START)
    await send(HELLO_BODY)


async def websocket(scope, receive, send):
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            data = message.get("bytes")
            if data is not None:
                await send({"type": "websocket.send", "bytes": data})
            else:
                await send({"type": "websocket.send", "text": message.get("text", "")})
        elif kind == "websocket.disconnect":
            return


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


HANDLERS = {"http": http, "websocket": websocket, "lifespan": lifespan}


async def app(scope, receive, send):
    await HANDLERS[scope["type"]](scope, receive, send)
