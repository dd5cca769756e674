"""For tests/python/test_error_log.py: a one-file Django site whose ``LOGGING`` sends the
root logger to the file named by ``DJANGO_LOG_FILE``, in its own format. bourbon must keep
those handlers: ``GET /?t=TOKEN`` logs ``django-record TOKEN`` at info, which must land in
that file, not in bourbon's error log. Without ``DJANGO_LOG_FILE`` the site has no
``LOGGING`` (Django's default configures only its ``django`` loggers).

``GET /boom?t=TOKEN`` raises: Django answers 500 and logs "Internal Server Error" with the
traceback to ``django.request``."""

import logging
import os

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="test-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    LOGGING={}
    if "DJANGO_LOG_FILE" not in os.environ
    else {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mine": {"format": "DJANGO-FORMAT %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": os.environ["DJANGO_LOG_FILE"],
                "formatter": "mine",
            }
        },
        "root": {"handlers": ["file"], "level": "INFO"},
    },
)
django.setup()


def index(request):
    logging.getLogger("site.views").info("django-record %s", request.GET.get("t", "-"))
    return HttpResponse(str(os.getpid()))


def boom(request):
    raise ValueError(f"django-boom {request.GET.get('t', '-')}")


urlpatterns = [path("", index), path("boom", boom)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
