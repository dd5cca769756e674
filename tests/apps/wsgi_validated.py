"""Small WSGI applications, each wrapped in ``wsgiref.validate.validator``.

The validator checks both sides of PEP 3333: what the server gives (environ, wsgi.input,
wsgi.errors, start_response, write) and what the application does. Any violation raises
AssertionError inside the server, which bourbon logs with a traceback; tests/python/
test_validator.py asserts the log has none. ``close()`` not being called shows up as
"Iterator garbage collected without being closed" on stderr.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import warnings
from wsgiref.validate import WSGIWarning, validator

# The validator reports soft problems as WSGIWarning. Show every one (never just once, never
# as an error that would change control flow): the tests fail if one appears in the log.
warnings.filterwarnings("always", category=WSGIWarning)

TEXT = [("Content-Type", "text/plain")]


def _json(start_response, obj):
    body = json.dumps(obj).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


@validator
def hello(environ, start_response):
    start_response("200 OK", TEXT)
    return [b"hello from a validated app\n"]


@validator
def read_sized(environ, start_response):
    # The validator's wsgi.input only allows read(size).
    inp = environ["wsgi.input"]
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = inp.read(8192)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    return _json(start_response, {"len": size, "sha256": digest.hexdigest()})


@validator
def read_lines(environ, start_response):
    inp = environ["wsgi.input"]
    lines = []
    while True:
        line = inp.readline()
        if not line:
            break
        lines.append(line.decode("latin-1"))
    return _json(start_response, {"lines": lines})


@validator
def read_readlines(environ, start_response):
    inp = environ["wsgi.input"]
    return _json(start_response, {"lines": [x.decode("latin-1") for x in inp.readlines()]})


@validator
def read_iter(environ, start_response):
    lines = [x.decode("latin-1") for x in environ["wsgi.input"]]
    return _json(start_response, {"lines": lines})


@validator
def head(environ, start_response):
    body = b"a body that HEAD must not send\n"
    start_response("200 OK", [*TEXT, ("Content-Length", str(len(body)))])
    return [body]


@validator
def generator(environ, start_response):
    def gen():
        # start_response on the first iteration, as PEP 3333 allows.
        start_response("200 OK", TEXT)
        for i in range(5):
            yield f"chunk {i}\n".encode()

    return gen()


@validator
def write(environ, start_response):
    w = start_response("200 OK", TEXT)
    w(b"written ")
    w(b"by write()")
    return []


@validator
def errors(environ, start_response):
    err = environ["wsgi.errors"]
    err.write("validated wsgi.errors line\n")
    err.writelines(["validated writelines line\n"])
    err.flush()
    start_response("200 OK", TEXT)
    return [b"ok"]


@validator
def exc_info(environ, start_response):
    start_response("200 OK", TEXT)
    try:
        raise LookupError("replace the head")
    except LookupError:
        start_response("404 Not Found", TEXT, sys.exc_info())
    return [b"replaced"]


@validator
def file_wrapper(environ, start_response):
    data = b"".join(b"%06d file wrapper line\n" % i for i in range(1000))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](io.BytesIO(data), 4096)


@validator
def checkpoint(environ, start_response):
    environ["wsgi.errors"].write(f"CHECKPOINT {environ['QUERY_STRING']}\n")
    start_response("200 OK", TEXT)
    return [b"checkpoint"]


ROUTES = {
    "/": hello,
    "/read": read_sized,
    "/readline": read_lines,
    "/readlines": read_readlines,
    "/iter": read_iter,
    "/head": head,
    "/generator": generator,
    "/write": write,
    "/errors": errors,
    "/exc-info": exc_info,
    "/file": file_wrapper,
    "/checkpoint": checkpoint,
}


def app(environ, start_response):
    route = ROUTES.get(environ["PATH_INFO"])
    if route is None:
        start_response("404 Not Found", TEXT)
        return [b"no such route\n"]
    return route(environ, start_response)
