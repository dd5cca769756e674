from django.urls import re_path

from . import views
from .rooms import ROOM

app_name = "chat"

urlpatterns = [
    re_path(r"^$", views.lobby, name="lobby"),
    re_path(rf"^{ROOM}/$", views.room, name="room"),
]
