"""A small WSGI application for the access log tests (tests/python/test_access_log.py), run
by bourbon and by gunicorn alike: behaviour by path."""


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/missing":
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    if path == "/post":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got " + str(len(body)).encode()]
    if path == "/id":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Request-ID", "req-42")])
        return [b"with an id"]
    if path == "/chunks":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * 1000, b"y" * 24]
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Hello, world!"]
