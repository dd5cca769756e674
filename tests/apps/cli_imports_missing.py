"""An app module whose own import of a dependency fails (tests/python/test_cli.py)."""

import cli_definitely_missing_dependency  # noqa: F401


def application(environ, start_response):  # pragma: no cover - never reached
    start_response("200 OK", [])
    return [b""]
