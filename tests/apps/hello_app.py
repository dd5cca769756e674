"""The smallest WSGI app: 13 bytes of text (also the benchmark's hello app)."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!"]
