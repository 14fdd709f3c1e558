"""Bounded FIFO trajectory queue with Reverb-queue semantics.

* ``put`` blocks while the queue is full: the back-pressure that bounds policy lag.
* ``take(n)`` removes and returns the ``n`` oldest items (FIFO); it blocks until they exist.
* Nothing is handed out before the queue has once held ``min_fill`` items, so the learner
  does not start on the first trickle of data.
* Every wait has a timeout and ends in :class:`QueueTimeoutError` with a message, never a hang;
  ``close()`` wakes every waiter with :class:`QueueClosedError` (used at shutdown).

:class:`TrajectoryQueue` is the in-process (threaded) queue used by ``local_mt``;
``replay.ray_nodes`` wraps the same logic in an asyncio Ray actor for ``local_mp`` and clusters.
The logic lives in :class:`QueueCore` so both share one implementation of the rules.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from typing import Any

from replay.types import QueueClosedError, QueueTimeoutError


@dataclasses.dataclass
class QueueStats:
    """Counters a launcher logs (queue fill, throughput of items)."""

    size: int
    capacity: int
    inserted: int
    taken: int
    closed: bool
    started: bool  # the queue has reached min_fill once


def validate_queue_args(capacity: int, min_fill: int) -> None:
    if capacity < 1:
        raise ValueError(f"queue capacity must be >= 1, got {capacity}")
    if not 0 <= min_fill <= capacity:
        raise ValueError(f"queue min_fill must be in [0, capacity={capacity}], got {min_fill}")


class QueueCore:
    """The queue's state and rules, without any waiting (callers hold the lock and wait)."""

    def __init__(self, capacity: int, min_fill: int = 1):
        validate_queue_args(capacity, min_fill)
        self.capacity = capacity
        self.min_fill = min_fill
        self.items: collections.deque = collections.deque()
        self.inserted = 0
        self.taken = 0
        self.closed = False
        self.started = min_fill == 0

    def check_take_size(self, n: int) -> None:
        if not 1 <= n <= self.capacity:
            raise ValueError(f"take(n={n}) must ask for 1..capacity={self.capacity} items")

    def can_put(self) -> bool:
        return len(self.items) < self.capacity

    def can_take(self, n: int) -> bool:
        return self.started and len(self.items) >= n

    def push(self, item: Any) -> None:
        self.items.append(item)
        self.inserted += 1
        if len(self.items) >= self.min_fill:
            self.started = True

    def pop(self, n: int) -> list:
        self.taken += n
        return [self.items.popleft() for _ in range(n)]

    def stats(self) -> QueueStats:
        return QueueStats(
            size=len(self.items),
            capacity=self.capacity,
            inserted=self.inserted,
            taken=self.taken,
            closed=self.closed,
            started=self.started,
        )


def put_timeout_message(capacity: int, timeout: float) -> str:
    return (
        f"trajectory queue stayed full ({capacity} items) for {timeout:.1f} s: "
        "the learner is not consuming (crashed or stalled?)"
    )


def take_timeout_message(n: int, size: int, started: bool, timeout: float) -> str:
    reason = "has not reached its minimum fill yet" if not started else f"holds only {size}"
    return (
        f"waited {timeout:.1f} s for {n} trajectories but the queue {reason}: "
        "actors are not producing (crashed, stalled or still compiling?)"
    )


class TrajectoryQueue:
    """In-process bounded FIFO (threads). Same interface as the Ray-backed client."""

    def __init__(self, capacity: int, min_fill: int = 1):
        self._core = QueueCore(capacity, min_fill)
        self._cond = threading.Condition()

    def put(self, item: Any, timeout: float | None = None) -> None:
        """Append ``item``; blocks while full. Raises QueueTimeoutError / QueueClosedError."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._core.closed or self._core.can_put(), timeout=timeout
            )
            if self._core.closed:
                raise QueueClosedError("trajectory queue is closed")
            if not ok:
                raise QueueTimeoutError(put_timeout_message(self._core.capacity, timeout))
            self._core.push(item)
            self._cond.notify_all()

    def take(self, n: int = 1, timeout: float | None = None) -> list:
        """Remove and return the ``n`` oldest items; blocks until available (and min fill)."""
        self._core.check_take_size(n)
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._core.closed or self._core.can_take(n), timeout=timeout
            )
            if not ok:
                core = self._core
                raise QueueTimeoutError(
                    take_timeout_message(n, len(core.items), core.started, timeout)
                )
            if self._core.closed:
                raise QueueClosedError("trajectory queue is closed")
            items = self._core.pop(n)
            self._cond.notify_all()
            return items

    def size(self) -> int:
        with self._cond:
            return len(self._core.items)

    def stats(self) -> QueueStats:
        with self._cond:
            return self._core.stats()

    def close(self) -> None:
        """Wake every waiter; later puts and takes raise QueueClosedError."""
        with self._cond:
            self._core.closed = True
            self._cond.notify_all()
