"""An application whose import takes a while, to stop a worker while it boots."""

import sys
import time

print("slow_boot_app: importing", file=sys.stderr, flush=True)
time.sleep(1.5)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"booted\n"]
