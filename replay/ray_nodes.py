"""Ray-actor versions of the trajectory queue and the variable server, and their clients.

Payloads never pass through the queue process: the producer ``ray.put``s a trajectory and the
queue keeps only object references; the consumer fetches the payloads straight from the object
store (zero-copy on one node). The producer owns its objects, so items of an actor process that
dies are lost with it: the consumer drops them with a warning and the run goes on. The clients have exactly the interface of the in-process classes, so nodes do not know
which launcher they run under. Errors travel back as status strings and are re-raised on the
client side as the same exception types.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from typing import Any

import ray

from replay.trajectory_queue import (
    QueueClosedError,
    QueueCore,
    QueueStats,
    QueueTimeoutError,
    put_timeout_message,
    take_timeout_message,
)
from replay.variable_server import NO_VERSION, Variables, check_new_version

OK, TIMEOUT, CLOSED = "ok", "timeout", "closed"
# Async actor: each blocked put/take is a coroutine, so thousands may wait at once.
MAX_CONCURRENCY = 1000


class QueueServer:
    """Asyncio Ray actor holding object references in a :class:`QueueCore`."""

    def __init__(self, capacity: int, min_fill: int = 1):
        self._core = QueueCore(capacity, min_fill)
        self._cond = asyncio.Condition()

    async def put(self, boxed_ref: list, timeout: float | None) -> tuple[str, str]:
        async with self._cond:
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self._core.closed or self._core.can_put()),
                    timeout,
                )
            except TimeoutError:
                return TIMEOUT, put_timeout_message(self._core.capacity, timeout)
            if self._core.closed:
                return CLOSED, "trajectory queue is closed"
            self._core.push(boxed_ref[0])
            self._cond.notify_all()
            return OK, ""

    async def take(self, n: int, timeout: float | None) -> tuple[str, Any]:
        self._core.check_take_size(n)
        async with self._cond:
            try:
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self._core.closed or self._core.can_take(n)),
                    timeout,
                )
            except TimeoutError:
                core = self._core
                return TIMEOUT, take_timeout_message(n, len(core.items), core.started, timeout)
            if self._core.closed:
                return CLOSED, "trajectory queue is closed"
            refs = self._core.pop(n)
            self._cond.notify_all()
            return OK, refs  # a list of refs inside a tuple: Ray does not resolve them

    async def size(self) -> int:
        return len(self._core.items)

    async def stats(self) -> dict:
        return dataclasses.asdict(self._core.stats())

    async def close(self) -> None:
        async with self._cond:
            self._core.closed = True
            self._cond.notify_all()


def raise_for_status(status: str, message: str) -> None:
    if status == TIMEOUT:
        raise QueueTimeoutError(message)
    if status == CLOSED:
        raise QueueClosedError(message)


class NamedActorClient:
    """Base of the clients: holds the actor's handle but pickles as its name only.

    A node process gets its clients through its constructor; Ray flags a restartable actor
    whose constructor arguments carry object references (actor handles included) because it
    cannot always rebuild them on a restart. By name the client resolves the actor in the
    receiving process (``ray.get_actor``, same job namespace) on first use instead.
    """

    def __init__(self, handle: ray.actor.ActorHandle, name: str):
        self._handle, self.name = handle, name

    @property
    def handle(self) -> ray.actor.ActorHandle:
        if self._handle is None:
            self._handle = ray.get_actor(self.name)
        return self._handle

    def __getstate__(self) -> dict:
        return {"_handle": None, "name": self.name}


def unique_name(kind: str) -> str:
    """An actor name no other run sharing the cluster's namespace uses."""
    return f"gridpod-{kind}-{uuid.uuid4().hex[:12]}"


class RayTrajectoryQueue(NamedActorClient):
    """Client of a :class:`QueueServer` actor; picklable, so nodes in any process can use it."""

    def put(self, item: Any, timeout: float | None = None) -> None:
        ref = ray.put(item)
        raise_for_status(*ray.get(self.handle.put.remote([ref], timeout)))

    def take(self, n: int = 1, timeout: float | None = None) -> list:
        status, payload = ray.get(self.handle.take.remote(n, timeout))
        raise_for_status(status, payload)
        return fetch_surviving(payload)

    def size(self) -> int:
        return ray.get(self.handle.size.remote())

    def stats(self) -> QueueStats:
        return QueueStats(**ray.get(self.handle.stats.remote()))

    def close(self) -> None:
        ray.get(self.handle.close.remote())


def fetch_surviving(refs: list) -> list:
    """Fetch payloads; an object lost with a dead node is dropped (logged), not fatal."""
    items = []
    for ref in refs:
        try:
            items.append(ray.get(ref))
        except (ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError) as error:
            logging.warning("dropping a lost trajectory: %s", type(error).__name__)
    return items


class VariableStore:
    """Ray actor holding the latest published variables as one object reference."""

    def __init__(self):
        # One tuple, replaced at once, so a concurrent get never mixes two versions.
        self._latest: tuple[int, list | None] = (NO_VERSION, None)

    def publish(self, version: int, boxed_ref: list) -> None:
        check_new_version(self._latest[0], version)
        self._latest = (version, boxed_ref)

    def get_version(self) -> int:
        return self._latest[0]

    def get(self) -> tuple[int, list | None]:
        return self._latest


class RayVariableServer(NamedActorClient):
    """Client of a :class:`VariableStore` actor, same interface as ``VariableServer``."""

    def publish(self, version: int, params: Any, norm_state: Any) -> None:
        ref = ray.put((params, norm_state))
        ray.get(self.handle.publish.remote(version, [ref]))

    def get_version(self) -> int:
        return ray.get(self.handle.get_version.remote())

    def get(self) -> Variables:
        version, boxed_ref = ray.get(self.handle.get.remote())
        if boxed_ref is None:
            return Variables(NO_VERSION, None, None)
        params, norm_state = ray.get(boxed_ref[0])
        return Variables(version, params, norm_state)

    def wait_first(self, timeout: float | None = None) -> Variables:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.get_version() == NO_VERSION:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"no parameters were published within {timeout} s")
            time.sleep(0.05)
        return self.get()


def create_queue(capacity: int, min_fill: int, name: str | None = None) -> RayTrajectoryQueue:
    """Start the queue actor (no CPU reserved: it only shuffles references)."""
    name = name or unique_name("queue")
    actor = ray.remote(QueueServer).options(num_cpus=0, max_concurrency=MAX_CONCURRENCY, name=name)
    return RayTrajectoryQueue(actor.remote(capacity, min_fill), name)


def create_variable_server(name: str | None = None) -> RayVariableServer:
    name = name or unique_name("variables")
    actor = ray.remote(VariableStore).options(num_cpus=0, max_concurrency=64, name=name)
    return RayVariableServer(actor.remote(), name)
