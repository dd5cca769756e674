"""The ``bourbon`` command: hands argv to Rust, which declares and parses every option."""

import sys

from bourbon._bourbon import run


def main() -> None:
    """Console-script entry point."""
    try:
        code = run(sys.argv[1:])
    except KeyboardInterrupt:
        # SIGINT is handled in Rust as a fast stop; Python may still see it once on return.
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
