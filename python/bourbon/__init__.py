"""bourbon: a production application server for Python web apps, written in Rust.

The server itself is the compiled module ``bourbon._bourbon``; this package only holds the
entry points (``bourbon`` command, ``python -m bourbon``) and small helpers.
"""

from bourbon._bourbon import ClientDisconnected, FileWrapper, __version__
from bourbon._logging import ErrorLogHandler

__all__ = ["ClientDisconnected", "ErrorLogHandler", "FileWrapper", "__version__", "run"]


def run(argv: list[str]) -> int:
    """Run the server with command-line arguments (without the program name).

    Returns the exit code: 0 after a clean stop, 1 when a socket cannot be bound, 2 for a bad
    setting, 4 when the application cannot be imported.
    """
    from bourbon._bourbon import run as _run

    return _run(list(argv))
