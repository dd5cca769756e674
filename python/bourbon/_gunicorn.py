"""gunicorn compatibility, the parts that must be Python: executing a gunicorn config file,
and the ``server`` and ``worker`` objects its server hooks receive.

No option is defined here. Which names of the executed file are settings, what they become
and when each hook is called are decided in Rust (``bourbon-config``'s table of gunicorn's
words, and the master and workers in ``bourbon._bourbon``).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import traceback
from typing import Any

from bourbon._bourbon import _log

__all__ = ["Config", "Log", "Request", "Response", "Server", "Worker", "read_config"]


def read_config(location: str) -> dict[str, Any]:
    """Execute a gunicorn config file as gunicorn does and return its namespace.

    ``python:pkg.mod`` imports a module; ``file:PATH`` or a plain path executes that file
    as a fresh module named ``__config__`` (with ``__file__`` set), from the current
    directory, which is first put on ``sys.path`` (gunicorn's chdir step does that before
    it reads the file), so the file may import the project's modules.
    """
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if location.startswith("python:"):
        return vars(importlib.import_module(location[len("python:") :]))
    path = location[len("file:") :] if location.startswith("file:") else location
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path!r} does not exist")
    name = "__config__"
    if os.path.splitext(path)[1] in (".py", ".pyc"):
        spec = importlib.util.spec_from_file_location(name, path)
    else:
        loader = importlib.machinery.SourceFileLoader(name, path)
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path!r} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return vars(module)


class Log:
    """``server.log`` / ``worker.log``: writes to bourbon's error log."""

    def _write(self, level: str, msg: object, args: tuple, tb: str | None = None) -> None:
        text = str(msg)
        if args:
            try:
                text = text % args
            except (TypeError, ValueError):
                text = " ".join([text, *map(str, args)])
        _log(level, text, tb)

    def debug(self, msg: object, *args: object, **_: object) -> None:
        self._write("debug", msg, args)

    def info(self, msg: object, *args: object, **_: object) -> None:
        self._write("info", msg, args)

    def warning(self, msg: object, *args: object, **_: object) -> None:
        self._write("warning", msg, args)

    warn = warning

    def error(self, msg: object, *args: object, **_: object) -> None:
        self._write("error", msg, args)

    def critical(self, msg: object, *args: object, **_: object) -> None:
        self._write("critical", msg, args)

    def exception(self, msg: object, *args: object, **_: object) -> None:
        """An error line followed by the traceback being handled."""
        tb = traceback.format_exc() if sys.exc_info()[0] is not None else None
        self._write("error", msg, args, tb)


class Config:
    """``cfg``: every setting as an attribute, under bourbon's names and gunicorn's."""

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"<bourbon settings: {len(self.__dict__)}>"


class Server:
    """The ``server`` argument of master hooks (gunicorn's arbiter)."""

    def __init__(self, pid: int, cfg: Config, proc_name: str, num_workers: int):
        self.pid = pid
        self.cfg = cfg
        self.log = Log()
        self.proc_name = proc_name
        self.num_workers = num_workers

    def __repr__(self) -> str:
        return f"<bourbon master {self.pid}>"


class Worker:
    """The ``worker`` argument: made in the master before the fork (``pid`` is then
    ``"[booting]"``, as in gunicorn), given its pid on both sides of it."""

    def __init__(self, age: int, ppid: int, cfg: Config):
        self.age = age
        self.ppid = ppid
        self.pid: int | str = "[booting]"
        self.cfg = cfg
        self.log = Log()
        self.alive = True
        self.booted = False

    def __repr__(self) -> str:
        return f"<bourbon worker {self.pid}>"


class Request:
    """The ``req`` argument of ``pre_request`` and ``post_request``, read from the environ."""

    def __init__(self, environ: dict[str, Any]):
        self.method = environ.get("REQUEST_METHOD", "")
        self.path = environ.get("PATH_INFO", "")
        self.query = environ.get("QUERY_STRING", "")
        self.uri = environ.get("RAW_URI") or (self.path + ("?" + self.query if self.query else ""))
        self.version = tuple(
            int(p) for p in environ.get("SERVER_PROTOCOL", "HTTP/1.1")[5:].split(".")
        )
        self.headers = [
            (k[5:].replace("_", "-").upper(), v)
            for k, v in environ.items()
            if k.startswith("HTTP_")
        ]
        for k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(k):
                self.headers.append((k.replace("_", "-"), environ[k]))
        self.scheme = environ.get("wsgi.url_scheme", "http")


class Response:
    """The ``resp`` argument of ``post_request``: what the application started."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.status_code: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = 0


class _Body:
    """The application's response iterable, passed through; its ``close()`` also calls
    ``post_request``, which is when gunicorn calls it (the response was written)."""

    def __init__(self, result: Any, done: Any):
        self._result = result
        self._done = done

    def __iter__(self) -> Any:
        return iter(self._result)

    def close(self) -> None:
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            self._done()


def wrap_app(app: Any, worker: Worker, pre: Any, post: Any) -> Any:
    """The application with ``pre_request``/``post_request`` around each call; only made
    when one of them is defined."""

    def call(environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        if pre is not None:
            try:
                pre(worker, req)
            except Exception:
                worker.log.exception("Exception in pre_request hook")
        if post is None:
            return app(environ, start_response)
        resp = Response()

        def start(status: str, headers: list, exc_info: Any = None) -> Any:
            resp.status = status
            resp.status_code = int(status.split(None, 1)[0])
            resp.headers = list(headers)
            return start_response(status, headers, exc_info)

        def done() -> None:
            try:
                post(worker, req, environ, resp)
            except Exception:
                worker.log.exception("Exception in post_request hook")

        try:
            result = app(environ, start)
        except BaseException:
            done()
            raise
        return _Body(result, done)

    return call
