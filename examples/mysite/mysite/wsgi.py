"""WSGI entry point: ``bourbon mysite.wsgi:application --chdir examples/mysite``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

application = get_wsgi_application()
