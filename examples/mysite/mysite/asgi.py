"""ASGI entry point: ``bourbon mysite.asgi:application --chdir examples/mysite``.

Every page of the site, plus the chat's WebSockets (``/ws/chat/<room>/``). HTTP goes to
Django's own ASGI handler, so the pages are the same views as under ``mysite.wsgi``;
WebSocket connections go through Channels' routing to ``chat.consumers.ChatConsumer``.
bench/run.py's ASGI cells (``--asgi-only``) serve it too.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

# Set Django up (settings, app registry) before anything imports models: the consumers and
# Channels' auth middleware do, through the imports below.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Refuse handshakes whose Origin is not in ALLOWED_HOSTS (a page on another site
        # opening a socket with the visitor's cookies); then the session's user goes into
        # scope["user"], and the path picks the consumer.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
