"""Plain WSGI apps for the micro workloads of bench/run.py, dispatched on PATH_INFO.

One module so each server is started once per repetition for all micro workloads; the
dispatch is one dict lookup, the same for every server.

The 1 MiB (and 1 GiB) files served through ``wsgi.file_wrapper`` are generated at run time
by the harness into a temporary directory passed as ``BENCH_FILE_DIR``; nothing binary is
committed.
"""

import os

HELLO = b"Hello, World!"  # 13 bytes
BODY_10K = b"x" * (10 * 1024)
BODY_1M = b"x" * (1024 * 1024)
STREAM_CHUNK = b"y" * 100
STREAM_CHUNKS = 100
BIG_STREAM_CHUNK = b"z" * (64 * 1024)
BIG_STREAM_CHUNKS = 128  # 8 MiB
FILE_DIR = os.environ.get("BENCH_FILE_DIR", "")
READ_SIZE = 64 * 1024


def _plain(start_response, body, ctype=b"text/plain"):
    start_response("200 OK", [("Content-Type", ctype.decode()), ("Content-Length", str(len(body)))])
    return [body]


def hello(environ, start_response):
    return _plain(start_response, HELLO)


def body_10k(environ, start_response):
    return _plain(start_response, BODY_10K)


def body_1m(environ, start_response):
    return _plain(start_response, BODY_1M)


def post_read(environ, start_response):
    """Read the whole request body (64 KiB in the benchmark) and answer its length."""
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    total = 0
    while remaining > 0:
        chunk = stream.read(min(READ_SIZE, remaining))
        if not chunk:
            break
        total += len(chunk)
        remaining -= len(chunk)
    return _plain(start_response, str(total).encode())


def stream_100(environ, start_response):
    """100 chunks of 100 bytes from a generator, no Content-Length."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def chunks():
        for _ in range(STREAM_CHUNKS):
            yield STREAM_CHUNK

    return chunks()


def stream_8m(environ, start_response):
    """8 MiB in 64 KiB chunks from a generator, no Content-Length: the slow-readers extra."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def chunks():
        for _ in range(BIG_STREAM_CHUNKS):
            yield BIG_STREAM_CHUNK

    return chunks()


def _file(environ, start_response, name):
    path = os.path.join(FILE_DIR, name)
    f = open(path, "rb")  # noqa: SIM115 - closed by the server through the wrapper
    size = os.fstat(f.fileno()).st_size
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))],
    )
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is not None:
        return wrapper(f, READ_SIZE)
    return _FileIter(f)


class _FileIter:
    """Fallback for servers without wsgi.file_wrapper (PEP 3333's suggested shape)."""

    def __init__(self, f):
        self.f = f

    def __iter__(self):
        return iter(lambda: self.f.read(READ_SIZE), b"")

    def close(self):
        self.f.close()


def file_1m(environ, start_response):
    return _file(environ, start_response, "file-1m.bin")


def file_1g(environ, start_response):
    return _file(environ, start_response, "file-1g.bin")


def probe(environ, start_response):
    """What the server offers: used by the harness to record file_wrapper support."""
    wrapper = environ.get("wsgi.file_wrapper")
    name = "none" if wrapper is None else getattr(wrapper, "__qualname__", repr(wrapper))
    name = f"{getattr(wrapper, '__module__', None) or 'builtin'}.{name}" if wrapper else name
    return _plain(start_response, f"file_wrapper={name}\n".encode())


def not_found(environ, start_response):
    body = b"not found\n"
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [body]


ROUTES = {
    "/": hello,
    "/hello": hello,
    "/10k": body_10k,
    "/1m": body_1m,
    "/post": post_read,
    "/stream": stream_100,
    "/stream-8m": stream_8m,
    "/file-1m": file_1m,
    "/file-1g": file_1g,
    "/probe": probe,
}


def app(environ, start_response):
    return ROUTES.get(environ["PATH_INFO"], not_found)(environ, start_response)
