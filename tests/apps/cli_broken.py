"""An app module that fails while being imported (tests/python/test_cli.py)."""

raise RuntimeError("boom at import")


def application(environ, start_response):  # pragma: no cover - never reached
    start_response("200 OK", [])
    return [b""]
