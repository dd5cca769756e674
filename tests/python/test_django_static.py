"""``--static django``: the example site's collected static files served by bourbon.

The site runs under a settings module of the test's own (``mysite.settings`` plus three
changes): ``STATIC_ROOT`` in a temporary directory, Django's ``ManifestStaticFilesStorage``
(which writes ``staticfiles.json``, the manifest of hashed names), and no WhiteNoise in
``MIDDLEWARE``, so that nothing in Python can serve ``/static/``: every static answer below is
bourbon's. ``collectstatic`` fills that root before bourbon starts.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import EXAMPLE, manage_py, run_bourbon
from rawhttp import Reader, Response

APP = "mysite.wsgi:application"
SETTINGS_MODULE = "bourbon_static_settings"
IMMUTABLE = "public, max-age=315360000, immutable"
TIMEOUT = 30.0

SETTINGS = '''\
"""mysite.settings for test_django_static.py: a temporary STATIC_ROOT, Django's manifest
storage, and no WhiteNoise."""

from mysite.settings import *  # noqa: F403

STATIC_ROOT = {root!r}
STORAGES = {{
    **STORAGES,  # noqa: F405
    "staticfiles": {{
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage",
    }},
}}
MIDDLEWARE = [m for m in MIDDLEWARE if "whitenoise" not in m]  # noqa: F405
'''


def settings_env(settings_dir: Path) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "PYTHONPATH": os.pathsep.join([str(settings_dir), str(EXAMPLE)]),
    }


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Iterator[tuple[Path, Path]]:
    """(the settings directory, STATIC_ROOT) after ``migrate`` and ``collectstatic``."""
    base = tmp_path_factory.mktemp("django-static")
    root = base / "static-root"
    (base / f"{SETTINGS_MODULE}.py").write_text(SETTINGS.format(root=str(root)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOURBON_")}
    env.update(settings_env(base))
    manage_py("migrate", "--noinput", env=env)
    manage_py("collectstatic", "--noinput", "-v", "0", env=env)
    assert (root / "staticfiles.json").is_file()
    yield base, root


@pytest.fixture
def site(start_server, collected):
    """Start the example site with ``extra`` arguments under the test's settings."""
    base, _ = collected

    def start(*extra: str):
        return start_server(
            APP, "--pythonpath", str(base), *extra, cwd=EXAMPLE, env=settings_env(base)
        )

    return start


def get(srv, target: str, *headers: str) -> Response:
    head = [f"GET {target} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    with closing(socket.create_connection(srv.host_port, timeout=TIMEOUT)) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        return Reader(s).response()


def manifest(root: Path) -> dict[str, str]:
    return json.loads((root / "staticfiles.json").read_text())["paths"]


def test_hashed_names_are_immutable_and_others_get_max_age(site, collected):
    _, root = collected
    paths = manifest(root)
    hashed = paths["admin/css/base.css"]
    assert hashed != "admin/css/base.css" and re.search(r"\.[0-9a-f]{12}\.css$", hashed)
    srv = site("--static", "django")

    resp = get(srv, f"/static/{hashed}")
    assert resp.status == 200, (resp.status, resp.headers)
    assert resp.body == (root / hashed).read_bytes()
    assert resp.header("content-type") == "text/css; charset=utf-8"
    assert resp.header("cache-control") == IMMUTABLE

    # The unhashed copy collectstatic also writes is served, but may change: a short max-age.
    resp = get(srv, "/static/admin/css/base.css")
    assert resp.status == 200
    assert resp.body == (root / "admin/css/base.css").read_bytes()
    assert resp.header("cache-control") == "public, max-age=60"


def test_the_pages_static_links_are_served_by_bourbon(site, collected):
    _, root = collected
    srv = site("--static", "django", "--static-max-age", "30")
    page = get(srv, "/")
    assert page.status == 200, page.body[:500]
    m = re.search(rb'href="(/static/polls/style\.[0-9a-f]{12}\.css)"', page.body)
    assert m, page.body[:1000]
    url = m.group(1).decode()
    resp = get(srv, url)
    assert resp.status == 200
    assert resp.body == (root / url[len("/static/") :]).read_bytes()
    assert resp.header("cache-control") == IMMUTABLE
    assert get(srv, "/static/polls/style.css").header("cache-control") == "public, max-age=30"


def test_without_static_django_nothing_serves_static(site, collected):
    """The control: the same site without ``--static django`` has nothing that serves
    /static/ (no WhiteNoise), so the 200s above can only be bourbon's."""
    _, root = collected
    hashed = manifest(root)["admin/css/base.css"]
    srv = site()
    assert get(srv, f"/static/{hashed}").status == 404


def test_missing_static_file_reaches_django(site):
    srv = site("--static", "django")
    resp = get(srv, "/static/admin/css/no-such-file.css")
    assert resp.status == 404
    # Django's own 404 page (DEBUG is off), not bourbon's short text.
    assert b"<h1>Not Found</h1>" in resp.body


def test_static_django_without_a_static_root_on_disk_is_a_settings_error(tmp_path):
    (tmp_path / f"{SETTINGS_MODULE}.py").write_text(
        SETTINGS.format(root=str(tmp_path / "never-collected"))
    )
    proc = run_bourbon(
        APP,
        "--pythonpath",
        str(tmp_path),
        "--static",
        "django",
        "-b",
        "127.0.0.1:0",
        cwd=EXAMPLE,
        env=settings_env(tmp_path),
        timeout=60,
    )
    # Found by the worker once Django's settings are loaded (the master never imports the
    # application): one error line saying which setting and the fix, and exit 2, a settings
    # error, not gunicorn's "failed to boot".
    errors = [ln for ln in proc.stderr.splitlines() if "[ERROR]" in ln]
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert len(errors) == 1, proc.stderr
    assert "--static django" in errors[0] and "never-collected" in errors[0], errors[0]
    assert "collectstatic" in errors[0], errors[0]
    assert "unknown option" not in proc.stderr
