"""Versioned parameter store: the learner publishes, actors poll.

Actors call ``get_version()`` (an int, cheap) before every rollout and ``get()`` only when it
changed, so acting never waits on parameter transfer. :class:`VariableServer` is the in-process
(threaded) variant; ``replay.ray_nodes`` has the Ray actor with the same interface.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

NO_VERSION = -1  # before the first publish


class Variables(NamedTuple):
    version: int
    params: Any
    norm_state: Any


def check_new_version(current: int, version: int) -> None:
    if version <= current:
        raise ValueError(
            f"published version {version} is not newer than the current version {current}"
        )


class VariableServer:
    """Latest (params, norm_state) with a monotonically increasing version."""

    def __init__(self):
        self._lock = threading.Lock()
        self._published = threading.Event()
        self._variables = Variables(NO_VERSION, None, None)

    def publish(self, version: int, params: Any, norm_state: Any) -> None:
        with self._lock:
            check_new_version(self._variables.version, version)
            self._variables = Variables(version, params, norm_state)
        self._published.set()

    def get_version(self) -> int:
        return self._variables.version  # one attribute read: atomic under the GIL

    def get(self) -> Variables:
        with self._lock:
            return self._variables

    def wait_first(self, timeout: float | None = None) -> Variables:
        """Block until something was published (actors start before the learner's first publish)."""
        if not self._published.wait(timeout):
            raise TimeoutError(f"no parameters were published within {timeout} s")
        return self.get()
