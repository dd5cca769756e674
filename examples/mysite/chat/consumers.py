"""The chat's WebSocket consumer: one connection joins one room and relays JSON messages.

Rooms are Channels groups on the channel layer configured in ``CHANNEL_LAYERS``. The example
site uses the in-memory layer, which lives inside one process: clients served by different
worker processes would not hear each other, so the demo runs one worker (a Redis layer,
``channels_redis``, lifts that limit).

The protocol, all text frames holding JSON objects:

- client → server: ``{"message": "...", "name": "..."}``; ``name`` is optional and only used
  when the connection is not logged in (a session from ``/admin/`` names its user).
- server → every client in the room: ``{"type": "message", "room", "user", "message", "at"}``
  (``at``: ISO 8601, UTC).
- server → the sender only, for a message it cannot relay: ``{"type": "error", "error"}``.
"""

from __future__ import annotations

import json

from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from .rooms import MAX_MESSAGE_CHARS, MAX_NAME_CHARS, group_name


class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.group = group_name(self.room)
        # Join before accepting: once the client sees the handshake complete, it is in the
        # room and cannot miss a message sent after that.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        # connect() may have failed before the group was set.
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if text_data is None:
            await self.send_error("send JSON in text frames")
            return
        try:
            data = json.loads(text_data)
        except ValueError:
            await self.send_error("not JSON")
            return
        if not isinstance(data, dict):
            await self.send_error("send a JSON object")
            return
        message = data.get("message")
        if not isinstance(message, str) or not message.strip():
            await self.send_error("'message' must be a non-empty string")
            return
        if len(message) > MAX_MESSAGE_CHARS:
            await self.send_error(f"'message' is longer than {MAX_MESSAGE_CHARS} characters")
            return
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "chat.message",
                "user": self.display_name(data.get("name")),
                "message": message,
                "at": timezone.now().isoformat(),
            },
        )

    def display_name(self, asked: object) -> str:
        user = self.scope.get("user")
        if user is not None and user.is_authenticated:
            return user.get_username()
        if isinstance(asked, str) and asked.strip():
            return asked.strip()[:MAX_NAME_CHARS]
        return "anonymous"

    async def chat_message(self, event: dict) -> None:
        """Handler for the group's ``chat.message`` events: one per member of the room."""
        await self.send(
            text_data=json.dumps(
                {
                    "type": "message",
                    "room": self.room,
                    "user": event["user"],
                    "message": event["message"],
                    "at": event["at"],
                }
            )
        )

    async def send_error(self, error: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "error": error}))
