"""The chat's pages and its consumer, driven in-process.

The consumer runs through the project's real ASGI application (``mysite.asgi``: origin check,
session auth, URL routing) with asgiref's ``ApplicationCommunicator``, on the in-memory channel
layer of the settings. Serving it over real sockets is bourbon's part, tested in
``tests/python/test_channels.py``. (``channels.testing`` is not used: it imports daphne.)
"""

import json

from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.test import SimpleTestCase, TestCase, TransactionTestCase, override_settings
from mysite.asgi import application

from .rooms import MAX_MESSAGE_CHARS

PLAIN_STATIC_STORAGES = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
TIMEOUT = 5


class Socket:
    """One WebSocket connection to ``application``, spoken in ASGI events."""

    def __init__(self, path: str, headers=()):
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"testserver"), *headers],
            "subprotocols": [],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.comm = ApplicationCommunicator(application, scope)

    async def connect(self) -> dict:
        await self.comm.send_input({"type": "websocket.connect"})
        return await self.comm.receive_output(TIMEOUT)

    async def send_text(self, text: str) -> None:
        await self.comm.send_input({"type": "websocket.receive", "text": text})

    async def send_json(self, data) -> None:
        await self.send_text(json.dumps(data))

    async def receive_json(self):
        event = await self.comm.receive_output(TIMEOUT)
        assert event["type"] == "websocket.send", event
        return json.loads(event["text"])

    async def close(self) -> None:
        await self.comm.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.comm.wait(TIMEOUT)


# The consumer's auth middleware reads the session from the database on a thread of its own,
# outside TestCase's transaction: hence TransactionTestCase.
class ConsumerTests(TransactionTestCase):
    async def test_message_reaches_everyone_in_the_room_and_no_one_else(self):
        a, b, other = Socket("/ws/chat/lobby/"), Socket("/ws/chat/lobby/"), Socket("/ws/chat/x/")
        for s in (a, b, other):
            self.assertEqual((await s.connect())["type"], "websocket.accept")
        await a.send_json({"message": "hello", "name": "ann"})
        for s in (a, b):
            got = await s.receive_json()
            self.assertEqual(
                {k: got[k] for k in ("type", "room", "user", "message")},
                {"type": "message", "room": "lobby", "user": "ann", "message": "hello"},
            )
            self.assertIn("T", got["at"])
        self.assertTrue(await other.comm.receive_nothing(0.2))
        for s in (a, b, other):
            await s.close()

    async def test_anonymous_without_a_name(self):
        s = Socket("/ws/chat/lobby/")
        await s.connect()
        await s.send_json({"message": "hi"})
        self.assertEqual((await s.receive_json())["user"], "anonymous")
        await s.close()

    async def test_bad_messages_get_an_error_for_the_sender_only(self):
        s, peer = Socket("/ws/chat/lobby/"), Socket("/ws/chat/lobby/")
        await s.connect()
        await peer.connect()
        for text in (
            "not json",
            "[1, 2]",
            json.dumps({"message": ""}),
            json.dumps({"message": 7}),
            json.dumps({"message": "x" * (MAX_MESSAGE_CHARS + 1)}),
        ):
            await s.send_text(text)
            got = await s.receive_json()
            self.assertEqual(got["type"], "error", text)
        await s.comm.send_input({"type": "websocket.receive", "bytes": b"{}"})
        self.assertEqual((await s.receive_json())["type"], "error")
        self.assertTrue(await peer.comm.receive_nothing(0.2))
        await s.close()
        await peer.close()

    async def test_unknown_path_is_refused(self):
        # URLRouter raises for a path it has no route for; the server turns that into a 403.
        s = Socket("/ws/nowhere/")
        await s.comm.send_input({"type": "websocket.connect"})
        with self.assertRaises(ValueError):
            await s.comm.receive_output(TIMEOUT)


@override_settings(STORAGES=PLAIN_STATIC_STORAGES)
class PageTests(TestCase):
    def test_index_links_the_chat(self):
        self.assertContains(self.client.get("/"), 'href="/chat/"')

    def test_lobby(self):
        response = self.client.get("/chat/")
        self.assertContains(response, 'name="room"')

    def test_lobby_redirects_to_the_room(self):
        response = self.client.get("/chat/", {"room": "news"})
        self.assertRedirects(response, "/chat/news/")

    def test_lobby_refuses_a_bad_room_name(self):
        response = self.client.get("/chat/", {"room": "no spaces"})
        self.assertContains(response, "A room name is", status_code=400)

    def test_room_page(self):
        response = self.client.get("/chat/news/")
        self.assertContains(response, 'data-ws-path="/ws/chat/news/"')
        self.assertContains(response, 'src="/static/chat/chat.js"')
        self.assertContains(response, "Served over WSGI")

    async def test_room_page_over_asgi(self):
        response = await self.async_client.get("/chat/news/")
        self.assertContains(response, "Served over ASGI")


class AsyncViewTests(TestCase):
    def test_async_view_under_wsgi(self):
        response = self.client.get("/async")
        self.assertEqual(response.json(), {"view": "async", "interface": "wsgi", "questions": 12})

    async def test_async_view_under_asgi(self):
        response = await self.async_client.get("/async")
        self.assertEqual(response.json(), {"view": "async", "interface": "asgi", "questions": 12})


class RoutingTests(SimpleTestCase):
    def test_room_names_are_ascii(self):
        response = self.client.get("/chat/caf%C3%A9/")
        self.assertEqual(response.status_code, 404)
