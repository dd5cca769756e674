"""Small Starlette application used by bourbon's pytest suite (test_asgi_frameworks.py).

Serve it with ``bourbon starlette_app:app --chdir tests/apps``. ``fastapi_app.py`` has the
same routes, so one test file covers both frameworks:

- ``GET /``: plain text; ``GET /json``: JSON;
- ``GET /state``: what the lifespan put into the app's state at startup;
- ``GET /stream/{key}``: a streaming response (no length, so chunked over HTTP/1.1) that
  sends its first chunk, then waits until ``POST /release/{key}`` before the rest: a test
  can see the first chunk arrive while the response is still open, without timing anything;
- ``POST /echo``: the request body back, with its content type;
- ``GET /file``: this file, as a ``FileResponse``;
- ``WS /ws``: echoes text and binary messages until the client closes.

When ``ASGI_APP_SHUTDOWN_FILE`` is set, the lifespan writes ``shutdown`` into that file when
the server shuts it down, so a test can check that shutdown ran.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

FRAMEWORK = "starlette"
THIS_FILE = Path(__file__).resolve()
STREAM_CHUNKS = 5
# How long a stream waits for its release before giving up (and ending the response early).
RELEASE_TIMEOUT = 30.0

# One event per stream key; one worker serves the stream and the release, on one event loop.
_gates: dict[str, asyncio.Event] = {}


def gate(key: str) -> asyncio.Event:
    return _gates.setdefault(key, asyncio.Event())


@asynccontextmanager
async def lifespan(app):
    # The yielded mapping becomes the ASGI "state", copied into every request's scope.
    yield {"greeting": f"set by the {FRAMEWORK} lifespan", "pid": os.getpid()}
    path = os.environ.get("ASGI_APP_SHUTDOWN_FILE")
    if path:
        Path(path).write_text("shutdown")


async def index(request: Request) -> Response:
    return PlainTextResponse(f"Hello from {FRAMEWORK}\n")


async def json_view(request: Request) -> Response:
    return JSONResponse({"framework": FRAMEWORK, "items": [1, 2, 3]})


async def state(request: Request) -> Response:
    return JSONResponse({"greeting": request.state.greeting, "pid": request.state.pid})


async def chunks(key: str):
    yield b"chunk 0\n"
    try:
        await asyncio.wait_for(gate(key).wait(), RELEASE_TIMEOUT)
    finally:
        _gates.pop(key, None)
    for i in range(1, STREAM_CHUNKS):
        yield f"chunk {i}\n".encode()


async def stream(request: Request) -> Response:
    return StreamingResponse(chunks(request.path_params["key"]), media_type="text/plain")


async def release(request: Request) -> Response:
    gate(request.path_params["key"]).set()
    return Response(status_code=204)


async def echo(request: Request) -> Response:
    body = await request.body()
    content_type = request.headers.get("content-type", "application/octet-stream")
    return Response(body, media_type=content_type)


async def file(request: Request) -> Response:
    return FileResponse(THIS_FILE, media_type="text/x-python")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


app = Starlette(
    routes=[
        Route("/", index),
        Route("/json", json_view),
        Route("/state", state),
        Route("/stream/{key}", stream),
        Route("/release/{key}", release, methods=["POST"]),
        Route("/echo", echo, methods=["POST"]),
        Route("/file", file),
        WebSocketRoute("/ws", ws_echo),
    ],
    lifespan=lifespan,
)
