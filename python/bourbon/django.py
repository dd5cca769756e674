"""Django helpers for bourbon: where a project keeps its static files.

``bourbon --static django`` calls :func:`static_mount` in each worker once the application
(and with it Django's settings) is loaded, and serves ``STATIC_ROOT`` at ``STATIC_URL`` from
Rust. Nothing here runs per request.
"""

from __future__ import annotations

import os


class StaticSettingsError(Exception):
    """Django's settings do not describe a directory bourbon can serve."""


def static_mount() -> tuple[str, str, str | None]:
    """Return ``(url_prefix, root_dir, manifest_path)`` from Django's settings.

    ``manifest_path`` is the ``staticfiles.json`` that ``ManifestStaticFilesStorage`` writes
    (None for other storages); the names listed in it are hashed, so bourbon sends them as
    immutable. Raises :class:`StaticSettingsError` with a sentence naming the setting and
    the fix when the settings cannot be served.
    """
    try:
        from django.conf import settings
    except ImportError as e:
        raise StaticSettingsError(
            "Django is not importable; give --static PREFIX=DIR instead of 'django'"
        ) from e
    try:
        url = settings.STATIC_URL
        root = settings.STATIC_ROOT
    except Exception as e:  # ImproperlyConfigured, or settings that fail to import
        raise StaticSettingsError(
            f"cannot read Django's settings ({e}); is DJANGO_SETTINGS_MODULE set?"
        ) from e
    if not url:
        raise StaticSettingsError("STATIC_URL is not set in Django's settings")
    url = str(url)
    if url.startswith(("http://", "https://", "//")):
        raise StaticSettingsError(
            f"STATIC_URL is {url!r}, another host (a CDN): bourbon serves paths on this "
            "server only; drop --static django or set STATIC_URL to a path such as /static/"
        )
    if not url.startswith("/"):
        url = "/" + url
    if not url.endswith("/"):
        url += "/"
    if not root:
        raise StaticSettingsError(
            "STATIC_ROOT is not set in Django's settings: set it to a directory and run "
            "'manage.py collectstatic'"
        )
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise StaticSettingsError(
            f"STATIC_ROOT {root!r} is not a directory: run 'manage.py collectstatic'"
        )
    return url, os.path.abspath(root), _manifest_path()


def _manifest_path() -> str | None:
    """Where ManifestStaticFilesStorage keeps its manifest, if that is the storage."""
    try:
        from django.contrib.staticfiles.storage import staticfiles_storage

        name = getattr(staticfiles_storage, "manifest_name", None)
        if not name:
            return None
        storage = getattr(staticfiles_storage, "manifest_storage", staticfiles_storage)
        return os.path.abspath(storage.path(name))
    except Exception:
        # Another storage (a remote one has no local path): no hashed names are known.
        return None
