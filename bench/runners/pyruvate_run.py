"""Serve a WSGI app with Pyruvate (no CLI): pyruvate_run.py module:callable host port workers."""

import importlib
import os
import sys

import pyruvate


def main():
    target, host, port, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    sys.path.insert(0, os.getcwd())  # like the other servers: the app dir is importable
    module, _, attr = target.partition(":")
    app = getattr(importlib.import_module(module), attr or "application")
    print(f"pyruvate listening at {host}:{port}", flush=True)
    pyruvate.serve(app, f"{host}:{port}", workers)


if __name__ == "__main__":
    main()
