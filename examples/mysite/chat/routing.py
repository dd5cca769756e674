"""WebSocket URLs of the chat, mounted by ``mysite/asgi.py``."""

from django.urls import re_path

from . import consumers

# ASCII only: the room name becomes part of a channel-layer group name.
ROOM = r"(?P<room>[A-Za-z0-9_-]{1,50})"

websocket_urlpatterns = [
    re_path(rf"^ws/chat/{ROOM}/$", consumers.ChatConsumer.as_asgi()),
]
