"""Serve a WSGI app with bjoern (no CLI): bjoern_run.py module:callable host port."""

import importlib
import os
import sys

import bjoern


def main():
    target, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.path.insert(0, os.getcwd())  # like the other servers: the app dir is importable
    module, _, attr = target.partition(":")
    app = getattr(importlib.import_module(module), attr or "application")
    print(f"bjoern listening at {host}:{port}", flush=True)
    bjoern.run(app, host, port)


if __name__ == "__main__":
    main()
