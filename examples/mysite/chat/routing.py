"""WebSocket URLs of the chat, mounted by ``mysite/asgi.py``."""

from django.urls import re_path

from . import consumers
from .rooms import ROOM

websocket_urlpatterns = [
    re_path(rf"^ws/chat/{ROOM}/$", consumers.ChatConsumer.as_asgi()),
]
