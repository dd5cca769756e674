"""WSGI apps for tests/python/test_cli.py: they report what the server gave them.

``GET /any/path?env=A,B`` answers with JSON: ``SCRIPT_NAME``, ``PATH_INFO``, every WSGI environ
key, ``os.environ`` values of the names in ``env``, the working directory and the process id.
"""

import json
import os
from urllib.parse import parse_qs


def _report(environ, tag):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    names = [n for v in query.get("env", []) for n in v.split(",") if n]
    return {
        "tag": tag,
        "script_name": environ.get("SCRIPT_NAME"),
        "path_info": environ.get("PATH_INFO"),
        "environ_keys": sorted(environ),
        "os_environ": {n: os.environ.get(n) for n in names},
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }


def _make(tag):
    def app(environ, start_response):
        body = json.dumps(_report(environ, tag)).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


# ``bourbon cli_app`` (bare module) serves this one.
application = _make("application")

# ``bourbon cli_app:app``
app = _make("app")

# ``bourbon cli_app:not_callable`` must be refused.
not_callable = 42


def make_app():
    """``bourbon 'cli_app:make_app()'``: a factory."""
    return _make("factory")


def failing_factory():
    """``bourbon 'cli_app:failing_factory()'``: a factory that raises."""
    raise ValueError("factory exploded")
