import re

from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from .rooms import MAX_MESSAGE_CHARS, MAX_NAME_CHARS, ROOM

ROOM_RE = re.compile(ROOM)


@require_GET
def lobby(request):
    """Pick a room: ``?room=NAME`` redirects to it; anything else shows the form."""
    room = request.GET.get("room", "")
    if ROOM_RE.fullmatch(room):
        return HttpResponseRedirect(reverse("chat:room", args=(room,)))
    status = 400 if room else 200
    return render(request, "chat/lobby.html", {"asked": room}, status=status)


@require_GET
def room(request, room):
    # The page builds the WebSocket URL from its own location (ws: or wss:, same host).
    context = {
        "room": room,
        "ws_path": f"/ws/chat/{room}/",
        "max_message": MAX_MESSAGE_CHARS,
        "max_name": MAX_NAME_CHARS,
    }
    return render(request, "chat/room.html", context)
