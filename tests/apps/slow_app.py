"""A slow WSGI app for drain tests: ``GET /?seconds=S`` sleeps S seconds, then answers.

It logs "slow_app: sleeping S s" to stderr when the request has reached it, so a test can
send a signal while the request is known to be in flight.
"""

import sys
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("seconds", ["1"])[0])
    print(f"slow_app: sleeping {seconds} s", file=sys.stderr, flush=True)
    time.sleep(seconds)
    body = f"slept {seconds} s\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
