"""``python -m bourbon``: the same as the ``bourbon`` command."""

from bourbon.cli import main

main()
