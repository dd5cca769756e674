"""Small FastAPI application used by bourbon's pytest suite (test_asgi_frameworks.py).

Serve it with ``bourbon fastapi_app:app --chdir tests/apps``. The routes are those of
``starlette_app.py`` (see there), written the FastAPI way, plus ``POST /items``: a JSON body
validated by a pydantic model (422 when it does not fit).
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel

FRAMEWORK = "fastapi"
THIS_FILE = Path(__file__).resolve()
STREAM_CHUNKS = 5
RELEASE_TIMEOUT = 30.0

_gates: dict[str, asyncio.Event] = {}


def gate(key: str) -> asyncio.Event:
    return _gates.setdefault(key, asyncio.Event())


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield {"greeting": f"set by the {FRAMEWORK} lifespan", "pid": os.getpid()}
    path = os.environ.get("ASGI_APP_SHUTDOWN_FILE")
    if path:
        Path(path).write_text("shutdown")


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float
    quantity: int = 1


@app.get("/", response_class=PlainTextResponse)
async def index() -> str:
    return f"Hello from {FRAMEWORK}\n"


@app.get("/json")
async def json_view() -> dict:
    return {"framework": FRAMEWORK, "items": [1, 2, 3]}


@app.get("/state")
async def state(request: Request) -> dict:
    return {"greeting": request.state.greeting, "pid": request.state.pid}


async def chunks(key: str):
    yield b"chunk 0\n"
    try:
        await asyncio.wait_for(gate(key).wait(), RELEASE_TIMEOUT)
    finally:
        _gates.pop(key, None)
    for i in range(1, STREAM_CHUNKS):
        yield f"chunk {i}\n".encode()


@app.get("/stream/{key}")
async def stream(key: str) -> StreamingResponse:
    return StreamingResponse(chunks(key), media_type="text/plain")


@app.post("/release/{key}", status_code=204)
async def release(key: str) -> Response:
    gate(key).set()
    return Response(status_code=204)


@app.post("/echo")
async def echo(request: Request) -> Response:
    body = await request.body()
    content_type = request.headers.get("content-type", "application/octet-stream")
    return Response(body, media_type=content_type)


@app.post("/items")
async def create_item(item: Item) -> dict:
    return {"name": item.name, "total": item.price * item.quantity}


# FastAPI's @app.get answers GET only (Starlette's Route adds HEAD by itself).
@app.api_route("/file", methods=["GET", "HEAD"])
async def file() -> FileResponse:
    return FileResponse(THIS_FILE, media_type="text/x-python")


@app.websocket("/ws")
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
