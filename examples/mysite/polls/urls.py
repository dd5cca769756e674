from django.urls import path

from . import views

app_name = "polls"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:question_id>/", views.detail, name="detail"),
    path("<int:question_id>/vote/", views.vote, name="vote"),
    path("<int:question_id>/results/", views.results, name="results"),
    path("plain", views.plain, name="plain"),
    path("plain-async", views.plain_async, name="plain-async"),
    path("json", views.json_view, name="json"),
    path("orm", views.orm, name="orm"),
    path("download", views.download, name="download"),
    path("stream", views.stream, name="stream"),
    path("events", views.events, name="events"),
    path("upload", views.upload, name="upload"),
    path("upload/raw", views.upload_raw, name="upload-raw"),
    path("echo-meta", views.echo_meta, name="echo-meta"),
    path("async", views.async_view, name="async"),
]
