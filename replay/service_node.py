"""What the launcher asks of every node it runs (actor, learner, evaluator): its process id,
and a stop flag that the node's loop watches.

Here, in ``replay``, because actors and learner both import ``replay`` and never each other.
"""

from __future__ import annotations

import os
import threading


class ServiceNode:
    """Base of a node: ``pid()`` for the supervisor, ``stop()`` sets ``self._stop``."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def pid(self) -> int:
        return os.getpid()

    def stop(self) -> None:
        self._stop.set()
