"""The example site's chat (Django Channels, in-memory channel layer) served by bourbon, end to
end: real WebSocket clients (the ``websockets`` library) and HTTP pages on the same listener.

Two ways of serving the site are tested, each with one worker (the in-memory layer is per
process):

- ``asgi``: ``bourbon mysite.asgi:application`` (what ``make demo`` runs): Channels'
  ``ProtocolTypeRouter`` gets the pages and the WebSockets;
- ``combined``: ``bourbon mysite.wsgi:application --asgi mysite.asgi:application``: the pages
  go to the WSGI application, WebSocket handshakes to the ASGI one.

In both, bourbon serves ``/static/`` itself (``--static django``). The chat's protocol is
described in ``examples/mysite/chat/consumers.py``.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest
from test_django import Client, csrf_field
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

TIMEOUT = 10.0
SERVE = {
    "asgi": ["mysite.asgi:application"],
    "combined": ["mysite.wsgi:application", "--asgi", "mysite.asgi:application"],
}


@pytest.fixture(params=sorted(SERVE))
def mode(request) -> str:
    return request.param


@pytest.fixture
def srv(start_server, django_site, mode):
    app, *extra = SERVE[mode]
    return start_server(app, *extra, "--static", "django", cwd=django_site)


@contextmanager
def chat(srv, room: str, headers: dict[str, str] | None = None) -> Iterator[ClientConnection]:
    host, port = srv.host_port
    with connect(
        f"ws://{host}:{port}/ws/chat/{room}/",
        additional_headers=headers,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    ) as ws:
        yield ws


def say(ws: ClientConnection, message: str, name: str | None = None) -> None:
    data = {"message": message}
    if name is not None:
        data["name"] = name
    ws.send(json.dumps(data))


def hear(ws: ClientConnection) -> dict:
    """The next message from the server, without its timestamp (checked for shape)."""
    data = json.loads(ws.recv(timeout=TIMEOUT))
    if data.get("type") == "message":
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", data.pop("at"))
    return data


def chat_message(room: str, user: str, message: str) -> dict:
    return {"type": "message", "room": room, "user": user, "message": message}


def test_message_reaches_everyone_in_the_room(srv):
    with chat(srv, "lobby") as ann, chat(srv, "lobby") as bob:
        say(ann, "hello, room", name="ann")
        assert hear(ann) == chat_message("lobby", "ann", "hello, room")
        assert hear(bob) == chat_message("lobby", "ann", "hello, room")
        say(bob, "hi ann ✓", name="bob")
        assert hear(ann) == chat_message("lobby", "bob", "hi ann ✓")
        assert hear(bob) == chat_message("lobby", "bob", "hi ann ✓")


def test_second_room_is_isolated(srv):
    with chat(srv, "lobby") as ann, chat(srv, "lobby") as bob, chat(srv, "kitchen") as cat:
        say(ann, "for the lobby only", name="ann")
        assert hear(bob) == chat_message("lobby", "ann", "for the lobby only")
        # The lobby's message is in every lobby member's queue by now (bob has it). Had cat
        # been given it too, it would come before cat's own message.
        say(cat, "for the kitchen", name="cat")
        assert hear(cat) == chat_message("kitchen", "cat", "for the kitchen")
        assert hear(ann) == chat_message("lobby", "ann", "for the lobby only")
        # And the kitchen's message did not reach the lobby: ann's next one is her own.
        say(ann, "still here", name="ann")
        assert hear(ann) == chat_message("lobby", "ann", "still here")


def test_bad_message_gets_an_error_for_the_sender_only(srv):
    with chat(srv, "lobby") as ann, chat(srv, "lobby") as bob:
        ann.send("not json")
        assert hear(ann) == {"type": "error", "error": "not JSON"}
        ann.send(b'{"message": "binary"}')
        assert hear(ann) == {"type": "error", "error": "send JSON in text frames"}
        say(ann, "   ")
        assert hear(ann)["type"] == "error"
        say(ann, "valid")
        assert hear(bob) == chat_message("lobby", "anonymous", "valid")


def test_logged_in_user_names_the_messages(srv):
    # Log in through the admin over HTTP; the session cookie then rides on the WebSocket
    # handshake and Channels' AuthMiddlewareStack puts the user into the consumer's scope.
    client = Client(srv)
    _, page = client.get("/admin/login/?next=/admin/")
    resp, _ = client.post_form(
        "/admin/login/?next=/admin/",
        {"csrfmiddlewaretoken": csrf_field(page), "username": "admin", "password": "admin"},
    )
    assert resp.status == 302
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    with chat(srv, "staff", headers={"Cookie": cookie}) as admin, chat(srv, "staff") as guest:
        say(admin, "hello", name="someone else")
        assert hear(guest) == chat_message("staff", "admin", "hello")


def test_pages_on_the_same_listener_while_sockets_are_open(srv, mode):
    interface = "asgi" if mode == "asgi" else "wsgi"
    with chat(srv, "lobby") as ann:
        client = Client(srv)
        resp, page = client.get("/")
        assert resp.status == 200
        assert b"<h1>Latest polls</h1>" in page
        assert f"Served over {interface.upper()}.".encode() in page
        resp, body = client.get("/async")
        assert resp.status == 200
        assert json.loads(body) == {"view": "async", "interface": interface, "questions": 12}
        resp, body = client.get("/plain")
        assert (resp.status, body) == (200, b"Hello from Django\n")
        # The socket is still there after the requests.
        say(ann, "after the pages", name="ann")
        assert hear(ann) == chat_message("lobby", "ann", "after the pages")


def test_chat_page_is_served(srv, django_site):
    client = Client(srv)
    resp, page = client.get("/")
    assert b'href="/chat/"' in page
    resp, page = client.get("/chat/")
    assert resp.status == 200
    assert b'name="room"' in page
    resp, _ = client.get("/chat/?room=news")
    assert resp.status == 302
    assert resp.getheader("Location") == "/chat/news/"
    resp, page = client.get("/chat/news/")
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/html")
    assert b'data-ws-path="/ws/chat/news/"' in page
    # The page's script, a hashed name from the manifest, served by bourbon from STATIC_ROOT.
    m = re.search(rb'<script src="(/static/chat/chat\.[0-9a-f]+\.js)" defer>', page)
    assert m, page[-1500:]
    url = m.group(1).decode()
    resp, script = client.get(url)
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith(("text/javascript", "application/js"))
    assert script == (django_site / "staticfiles" / url[len("/static/") :]).read_bytes()
    assert b"new WebSocket(url)" in script


def test_many_clients_in_one_room(srv):
    with ExitStack() as stack:
        clients = [stack.enter_context(chat(srv, "crowd")) for _ in range(20)]
        for i, ws in enumerate(clients[:3]):
            say(ws, f"message {i}", name=f"user{i}")
        for ws in clients:
            got = [hear(ws) for _ in range(3)]
            assert got == [chat_message("crowd", f"user{i}", f"message {i}") for i in range(3)]


def test_unknown_websocket_path_is_refused(srv):
    host, port = srv.host_port
    with pytest.raises(InvalidStatus) as refused:
        with connect(f"ws://{host}:{port}/ws/nowhere/", open_timeout=TIMEOUT):
            pass
    # Channels' URLRouter raises before accepting: no 101, an error status instead.
    assert refused.value.response.status_code >= 400
    # The worker is still serving.
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/plain")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def test_graceful_stop_closes_sockets_with_1012(srv):
    # On SIGTERM open WebSockets are closed with 1012 (service restart) so that clients
    # reconnect, here to another pod or the restarted server, and the server exits 0.
    with chat(srv, "lobby") as ann:
        say(ann, "before the stop", name="ann")
        assert hear(ann) == chat_message("lobby", "ann", "before the stop")
        srv.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            ann.recv(timeout=TIMEOUT)
        assert closed.value.rcvd is not None, srv.log
        assert closed.value.rcvd.code == 1012, srv.log
    assert srv.proc.wait(TIMEOUT) == 0, srv.log
