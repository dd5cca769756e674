"""Python ``logging`` and bourbon's error log.

The error log itself (its file, its format, its reopening on SIGUSR1) is Rust's; this module
only connects Python's ``logging`` to it:

- ``ErrorLogHandler`` is a handler that writes records there (public as
  ``bourbon.ErrorLogHandler``, for ``--log-config`` files);
- ``configure`` applies ``--log-config`` in the master, before any application is imported;
- ``install`` makes records that find no handler at all go to the error log rather than to
  a standard error nobody reads (``logging.lastResort``);
- ``adopt_root``, once the application is imported, gives the root logger that handler when
  neither the application nor ``--log-config`` configured one. It runs after the import on
  purpose: an application that calls ``logging.basicConfig()`` or Django's ``LOGGING`` with a
  ``root`` keeps what it configured, as under gunicorn.
"""

from __future__ import annotations

import logging
import os
import sys

from bourbon import _bourbon

__all__ = ["ErrorLogHandler"]

# gunicorn's loggers: bourbon's own lines are written by Rust, not through them.
_GUNICORN_LOGGERS = ("gunicorn.error", "gunicorn.access")


class ErrorLogHandler(logging.Handler):
    """A ``logging`` handler that writes to bourbon's error log.

    Records take the error log's shape (``--log-format``): as text, gunicorn's
    ``[time] [pid] [LEVEL] logger: message`` line with the traceback after it; as JSON, one
    object with ``logger``, ``message`` and ``traceback``. A formatter set on the handler
    formats the message instead (its text then holds the traceback too).
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.formatter is not None:
                message, tb = self.format(record), None
            else:
                message, tb = record.getMessage(), None
                if record.exc_info:
                    tb = logging.Formatter().formatException(record.exc_info)
                elif record.exc_text:
                    tb = record.exc_text
                if record.stack_info:
                    tb = f"{tb}\n{record.stack_info}" if tb else record.stack_info
            _bourbon._log_record(record.levelno, record.name, message, tb)
        except Exception:  # logging's contract: a failing handler reports, never raises
            self.handleError(record)


class LogConfigError(Exception):
    """A ``--log-config`` file that cannot be read or applied."""


def configure(path: str) -> None:
    """Apply ``--log-config``: dictConfig from ``.json``/``.toml``, else fileConfig (INI)."""
    # Imported here: only a server given --log-config pays for them.
    import configparser
    import json
    import logging.config

    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise LogConfigError(f"cannot read it: {e.strerror or e}") from None
    try:
        if ext == ".json":
            config = json.loads(data)
        elif ext == ".toml":
            config = _toml(data)
        else:
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_string(data.decode(), source=path)
            missing = [
                s for s in ("loggers", "handlers", "formatters") if not parser.has_section(s)
            ]
            if missing:
                sections = ", ".join(f"[{s}]" for s in missing)
                raise LogConfigError(f"an INI logging file needs the sections {sections}")
            logging.config.fileConfig(parser, disable_existing_loggers=False)
            _warn_gunicorn_loggers()
            return
    except LogConfigError:
        raise
    except Exception as e:
        raise LogConfigError(_describe(e)) from None
    if not isinstance(config, dict):
        raise LogConfigError("it must hold one object (a dictConfig dictionary)")
    # dictConfig insists on the schema version, which has only ever been 1.
    config.setdefault("version", 1)
    try:
        logging.config.dictConfig(config)
    except Exception as e:
        raise LogConfigError(_describe(e)) from None
    _warn_gunicorn_loggers()


def _toml(data: bytes) -> object:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise LogConfigError("reading TOML needs Python 3.11, or tomli installed") from None
    return tomllib.loads(data.decode())


def _describe(e: BaseException) -> str:
    """The error and, for dictConfig's "Unable to configure handler 'x'", its cause."""
    text = f"{type(e).__name__}: {e}"
    cause = e.__cause__ or e.__context__
    if cause is not None and str(cause) not in text:
        text += f" ({type(cause).__name__}: {cause})"
    return " ".join(text.split())


def _warn_gunicorn_loggers() -> None:
    configured = [n for n in _GUNICORN_LOGGERS if n in logging.root.manager.loggerDict]
    if configured:
        _bourbon._log(
            "warning",
            f"--log-config: {' and '.join(configured)} configure nothing here: bourbon writes "
            "its own lines itself (--error-logfile, --log-format, --access-logfile, "
            "--access-logformat)",
        )


def install(levelno: int) -> None:
    """Records that no handler takes go to the error log, at ``--log-level`` and above."""
    logging.lastResort = ErrorLogHandler(levelno)


def adopt_root(levelno: int) -> bool:
    """Give the root logger the error log handler unless something configured it."""
    root = logging.getLogger()
    if root.handlers:
        return False
    root.addHandler(ErrorLogHandler())
    # WARNING is Python's default: the application did not choose a level, --log-level does.
    if root.level == logging.WARNING:
        root.setLevel(levelno)
    return True


def capture_prepare() -> None:
    """Before descriptors 1 and 2 are pointed at the error log: write what is buffered."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def capture_done() -> None:
    """After: ``print()`` reaches the file at each line (a file makes stdout block-buffered)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(line_buffering=True)
            except (OSError, ValueError):
                pass
