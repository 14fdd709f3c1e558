"""The one-line start-up error every command line ends with on bad input.

Kept apart from ``launch.cli`` (which defines the launchers' flags) so that libraries and
benchmark commands can end the same way without importing those flags.
"""

from __future__ import annotations

import sys


def exit_with_error(message: str) -> None:
    """The one-line start-up error: message on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)
