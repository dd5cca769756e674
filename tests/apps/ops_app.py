"""For tests/python/test_ops.py: reports the process the request ran in.

``GET /?env=A,B`` answers with JSON: pid, parent pid, real and effective ids, supplementary
groups, the umask, and ``os.environ`` values of the names in ``env``.

It imports nothing but ``os`` (already loaded by the master): with ``--user nobody`` the worker
may not be able to read the standard library (on this sandbox it lives under ``/root``).
"""

import os


def _str(v):
    if v is None:
        return "null"
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def app(environ, start_response):
    query = environ.get("QUERY_STRING", "")
    names = [
        n for part in query.split("&") if part.startswith("env=") for n in part[4:].split(",") if n
    ]
    mask = os.umask(0)
    os.umask(mask)
    env = ", ".join(f"{_str(n)}: {_str(os.environ.get(n))}" for n in names)
    groups = ", ".join(str(g) for g in sorted(os.getgroups()))
    body = (
        f'{{"pid": {os.getpid()}, "ppid": {os.getppid()}, "uid": {os.getuid()}, '
        f'"euid": {os.geteuid()}, "gid": {os.getgid()}, "groups": [{groups}], '
        f'"umask": {mask}, "os_environ": {{{env}}}}}'
    ).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
