"""A response whose close() is slow or fails, to see when the server calls it."""

import sys
import time


class Body:
    def __init__(self, path):
        self.path = path
        self.chunks = [b"done\n"]

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        if self.path == "/slow-close":
            time.sleep(0.5)
            print("close_app: closed after sleeping", file=sys.stderr, flush=True)
        elif self.path == "/bad-close":
            raise RuntimeError("close_app: close failed")


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return Body(environ["PATH_INFO"])
