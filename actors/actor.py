"""The actor node: threads that roll out batches of grids and feed the trajectory queue.

One node owns the devices it is given (a process of its own under ``local_mp`` and on
clusters, a set of threads under ``local_mt``). Each device runs
``actors.threads_per_device`` threads; each thread keeps its own batch of grids on its device,
takes new parameters whenever the variable server's version changed (a cheap integer poll, so
acting never waits), runs one compiled rollout, moves the result to host once and puts it in
the queue (blocking when full: back-pressure). Threads take turns computing: one per device on
accelerators, one per process on XLA:CPU (``rollout_locks``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np

from actors.rollout import make_rollout
from replay.compute_lock import CPU_COMPUTE_LOCK
from replay.service_node import ServiceNode
from replay.types import EpisodeTotals, QueueClosedError, TrajectoryItem


@dataclasses.dataclass
class ActorCounters:
    """Per-thread counters, read by ``ActorNode.stats`` (plain ints/floats: GIL-safe)."""

    rollouts: int = 0
    env_steps: int = 0
    param_updates: int = 0
    queue_wait_s: float = 0.0  # blocked on a full queue (actor idle time)
    busy_s: float = 0.0  # rolling out and transferring
    item_bytes: int = 0  # host bytes of one queue item (the queue's memory unit); not summed


class ActorNode(ServiceNode):
    """Actor threads on ``device_indices`` (indices into this process's ``jax.devices()``).

    ``make_env_and_policy(config) -> (env, env_params, policy)`` builds what the threads act
    with; ``policy`` is a ``replay.types.ActingPolicy``. The launcher passes the learner's
    (``learner.acting.build_env_and_policy``): actors never import the learner.
    """

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        first_actor_id: int,
        device_indices: tuple[int, ...],
        queue,
        variables,
        make_env_and_policy: Callable,
    ):
        self._config = config
        self._first_actor_id = first_actor_id
        self._device_indices = tuple(device_indices)
        self._queue = queue
        self._variables = variables
        self._make_env_and_policy = make_env_and_policy
        super().__init__()
        self._counters: list[ActorCounters] = []

    def run(self, incarnation: int = 0) -> dict:
        """Act until stopped or the queue closes; re-raises the first thread error."""
        env, env_params, policy = self._make_env_and_policy(self._config)
        devices = [jax.devices()[i] for i in self._device_indices]
        per_device = self._config.actors.threads_per_device
        # One jitted rollout for all threads: threads on the same device share its executable
        # (compiled once, not once per thread).
        compiled = jitted_rollout(env, env_params, policy, self._config.learner.unroll_length)
        # The reset traced once, here: threads that reach a jitted function together each trace
        # it (jit caches a trace once one finishes), and tracing holds the GIL. The rollout's
        # first calls are serialised by the rollout locks on CPU.
        thread_key = jax.eval_shape(lambda: jax.random.PRNGKey(0))  # as ActorThread's keys
        compiled[0].trace(thread_key, self._config.actors.num_envs)
        locks = rollout_locks(devices)
        threads, errors = [], []
        self._counters = []
        for slot in range(len(devices) * per_device):
            counters = ActorCounters()
            self._counters.append(counters)
            worker = ActorThread(
                self._config,
                actor_id=self._first_actor_id + slot,
                device=devices[slot // per_device],
                rollout_lock=locks[devices[slot // per_device]],
                seed=hash((self._config.seed, self._first_actor_id + slot, incarnation)),
                rollout_fns=compiled,
                queue=self._queue,
                variables=self._variables,
                stop=self._stop,
                counters=counters,
            )
            thread = threading.Thread(target=run_capturing(worker.run, errors), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return self.stats()

    def stats(self) -> dict:
        totals = ActorCounters()
        for c in self._counters:
            for field in dataclasses.fields(ActorCounters):
                setattr(totals, field.name, getattr(totals, field.name) + getattr(c, field.name))
        totals.item_bytes = max((c.item_bytes for c in self._counters), default=0)
        slowest = min((c.rollouts for c in self._counters), default=0)
        return dataclasses.asdict(totals) | {
            "threads": len(self._counters),
            "pid": os.getpid(),
            "min_thread_rollouts": slowest,  # 0 while a device still compiles
        }


def item_nbytes(item: TrajectoryItem) -> int:
    """Host bytes of a queue item's arrays (its trajectory and episode totals)."""
    return int(sum(np.asarray(leaf).nbytes for leaf in jax.tree_util.tree_leaves(item)))


def rollout_locks(devices) -> dict:
    """The lock each device's threads hold while their rollout computes.

    Accelerators: one per device. Threads of a device take turns on it: one moves its
    trajectory to host and queues it while the next computes, which is all that sharing a
    device buys. XLA:CPU: one for all the devices of the process. Emulated CPU devices share
    one thread pool, and concurrent executions whose while loops wait inside pool threads can
    wedge it: four concurrent ieee118 rollouts on two devices of a 2-core host never completed,
    and two (one per device) wedged in a training run after a few minutes. The learner of a
    ``local_mt`` run takes the same lock (``replay.compute_lock``).
    """
    if all(device.platform == "cpu" for device in devices):
        return {device: CPU_COMPUTE_LOCK for device in devices}
    return {device: threading.Lock() for device in devices}


def jitted_rollout(env, env_params, policy, unroll_length: int) -> tuple[Callable, Callable]:
    """``(init_carry(key, num_envs), rollout(params, norm_state, carry, key))``, jitted."""
    init_carry, rollout = make_rollout(env, env_params, policy, unroll_length)
    return jax.jit(init_carry, static_argnums=1), jax.jit(rollout, donate_argnums=2)


def run_capturing(target: Callable, errors: list) -> Callable:
    def wrapped():
        try:
            target()
        except BaseException as error:  # surfaced by ActorNode.run
            errors.append(error)

    return wrapped


class ActorThread:
    """One actor loop on one device."""

    def __init__(
        self,
        config,
        actor_id,
        device,
        rollout_lock,
        seed,
        rollout_fns,
        queue,
        variables,
        stop,
        counters,
    ):
        init_carry, rollout = rollout_fns  # from jitted_rollout, shared by the node's threads
        self._config = config
        self._actor_id = actor_id
        self._device = device
        self._rollout_lock = rollout_lock
        self._queue = queue
        self._variables = variables
        self._stop = stop
        self._counters = counters
        self._key = jax.random.PRNGKey(seed % (2**31))
        self._init_carry, self._rollout = init_carry, rollout
        self._version = -1
        self._params = None
        self._last_put_wait = 0.0

    def _refresh_params(self) -> None:
        """Fetch parameters only when the published version changed."""
        if self._variables.get_version() == self._version:
            return
        latest = self._variables.get()
        self._params = jax.device_put((latest.params, latest.norm_state), self._device)
        self._version = latest.version
        self._counters.param_updates += 1

    def run(self) -> None:
        timeout = self._config.actors.first_params_timeout_s
        self._variables.wait_first(timeout=timeout)
        key_init, self._key = jax.random.split(self._key)
        # The key committed to this thread's device places the carry there. No
        # ``jax.default_device`` around the call: it is part of jit's trace cache key, so each
        # thread's device traced the whole reset again (~7 s each with the threads contending).
        key_init = jax.device_put(key_init, self._device)
        carry = self._init_carry(key_init, self._config.actors.num_envs)
        while not self._stop.is_set():
            carry = self._act_once(carry)
            if carry is None:
                return

    def _act_once(self, carry):
        start = time.perf_counter()
        self._refresh_params()
        key_rollout, self._key = jax.random.split(self._key)
        params, norm_state = self._params
        key_rollout = jax.device_put(key_rollout, self._device)
        with self._rollout_lock:  # see rollout_locks
            carry, trajectory, totals = self._rollout(params, norm_state, carry, key_rollout)
            jax.block_until_ready((carry, trajectory, totals))
        trajectory, totals = jax.device_get((trajectory, totals))
        item = TrajectoryItem(
            trajectory=trajectory,
            policy_version=self._version,
            actor_id=self._actor_id,
            episodes=EpisodeTotals(*totals),
            rollout_seconds=time.perf_counter() - start,
            previous_put_wait_seconds=self._last_put_wait,
        )
        if not self._counters.item_bytes:  # the same for every rollout of a run
            self._counters.item_bytes = item_nbytes(item)
        put_start = time.perf_counter()
        self._counters.busy_s += put_start - start
        try:
            self._queue.put(item, timeout=self._config.actors.put_timeout_s)
        except QueueClosedError:
            logging.info("actor %d: queue closed, stopping", self._actor_id)
            return None
        self._last_put_wait = time.perf_counter() - put_start
        self._counters.queue_wait_s += self._last_put_wait
        self._counters.rollouts += 1
        self._counters.env_steps += trajectory.reward.shape[0] * trajectory.reward.shape[1]
        return carry
