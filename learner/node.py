"""The learner node: takes batches from the queue, updates, publishes, logs and checkpoints.

The learner's counterpart of ``actors.actor.ActorNode``; the two meet only through
``replay`` (queue, variable server, ``replay.types``) and are wired together by ``launch``.
Every update consumes exactly ``items_per_update`` queue items (``k`` per learner device,
concatenated along B), so the env-step counter is ``update_step x T x B`` and a resumed run
continues with identical counters.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from absl import logging as absl_logging

from replay.compute_lock import cpu_compute_lock
from replay.service_node import ServiceNode
from replay.types import QueueClosedError, TrajectoryItem, idle_fraction


def default_learner_parts(config: ml_collections.ConfigDict, devices: list, checkpoint_dir: str):
    """(spec, learner, checkpointer) from the env and learner packages."""
    from envs.env import make_env
    from learner.checkpoint import Checkpointer
    from learner.learner import Learner

    env, env_params = make_env(config.env)
    spec = env.spec(env_params)
    checkpointer = Checkpointer(checkpoint_dir, config.learner, spec, experiment_config=config)
    return spec, Learner(config.learner, spec, devices), checkpointer


class LearnerNode(ServiceNode):
    """Runs the learning loop on ``device_indices`` of this process's ``jax.devices()``.

    ``plan`` holds the numbers derived once from the config (``launch.plan.LearnerPlan``:
    ``items_per_update``, ``env_steps_per_update``, ``total_updates``, ``checkpoint_every``,
    ``take_timeout_s``). ``make_log(config, spec, run_dir)`` makes what records every update
    (the launcher's TensorBoard log): ``scalars(env_steps, behaviour_version, items,
    metrics) -> dict``, ``write(env_steps, scalars)``, ``total_episodes`` and ``close()``.
    """

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        device_indices: tuple[int, ...],
        queue,
        variables,
        run_dir: str,
        resume: bool,
        plan,
        make_log: Callable,
        make_parts: Callable | None = None,
    ):
        self._config = config
        self._device_indices = tuple(device_indices)
        self._queue = queue
        self._variables = variables
        self._run_dir = run_dir
        self._resume = resume
        self._plan = plan
        self._make_log = make_log
        self._make_parts = make_parts or default_learner_parts
        super().__init__()
        self._lock = threading.Lock()
        self._progress: dict = {
            "status": "building and compiling",
            "update": 0,
            "env_steps": 0,
            "total_env_steps": plan.total_updates * plan.env_steps_per_update,
        }

    def progress(self) -> dict:
        with self._lock:
            return dict(self._progress)

    def _set_progress(self, **values) -> None:
        with self._lock:
            self._progress.update(values)

    def run(self) -> dict:
        absl_logging.set_verbosity(absl_logging.WARNING)  # Orbax logs every save at INFO
        devices = [jax.devices()[i] for i in self._device_indices]
        checkpoint_dir = os.path.join(self._run_dir, "checkpoints")
        spec, learner, checkpointer = self._make_parts(self._config, devices, checkpoint_dir)
        state, start_update = self._initial_state(learner, checkpointer)
        self._publish(state)
        log = self._make_log(self._config, spec, self._run_dir)
        lock = cpu_compute_lock(devices)
        loop = LearnLoop(self, learner, checkpointer, log, start_update, lock)
        if int(self._config.learner.checkpoint.get("validation_episodes", 0)) > 0:
            from learner.validation import Validator

            loop.validate = Validator(self._config, devices[0])
        try:
            loop.run(state)
        finally:
            save_final(checkpointer, loop.state)
            log.close()
        update = int(jax.device_get(loop.state.update_step))
        summary = loop.summary(update, checkpointer.directory)
        self._set_progress(status="done", **summary)
        return summary

    def _initial_state(self, learner, checkpointer):
        init_key = jax.random.PRNGKey(self._config.seed)
        state = learner.init(init_key)
        if self._resume and checkpointer.latest_step() is not None:
            state = checkpointer.restore(state)
            logging.info("resumed from update %d", int(state.update_step))
        return state, int(jax.device_get(state.update_step))

    def _publish(self, state) -> None:
        params, norm_state, version = jax.device_get(
            (state.params, state.norm_state, state.update_step)
        )
        self._variables.publish(int(version), params, norm_state)

    def _take_batch(self) -> list[TrajectoryItem]:
        """``items_per_update`` items; items lost with a dead actor process are replaced."""
        items: list = []
        while len(items) < self._plan.items_per_update:
            missing = self._plan.items_per_update - len(items)
            items += self._queue.take(missing, timeout=self._plan.take_timeout_s)
        return items


def actor_idle_fraction(items: list[TrajectoryItem]) -> float:
    """Share of the producing threads' time spent blocked on a full queue."""
    waited = sum(item.previous_put_wait_seconds for item in items)
    return idle_fraction(waited, sum(item.rollout_seconds for item in items))


def save_final(checkpointer, state) -> None:
    """The final checkpoint (a no-op if this step is saved); never masks the error that ended
    the run (after a failed update the state's buffers may be gone)."""
    try:
        checkpointer.save(state)
    except Exception as error:
        logging.error("final checkpoint failed: %s", error)
    finally:
        checkpointer.close()


class LearnLoop:
    """The update loop and its bookkeeping (kept apart from setup to keep both short)."""

    def __init__(self, node: LearnerNode, learner, checkpointer, log, start_update, compute_lock):
        self.node, self.learner, self.checkpointer = node, learner, checkpointer
        self.log = log
        self.start_update = start_update
        self.wait_s = self.update_s = 0.0
        self.started = time.monotonic()
        self.first_done: tuple[float, int] | None = None  # (time, update) after compiling
        self.state = None  # the latest state (what a final checkpoint saves)
        # Held while an update computes (replay.compute_lock): on XLA:CPU the learner of a
        # local_mt run would otherwise share the thread pool with actor rollouts.
        self.compute_lock = compute_lock
        self.last: dict = {}
        # params, norm_state -> metrics stored with each checkpoint saved on the cadence
        # (learner.validation.Validator); None: checkpoints carry no metrics.
        self.validate: Callable | None = None
        self.last_validation: dict = {}

    def run(self, state) -> None:
        self.state = state
        node, plan = self.node, self.node._plan
        update = self.start_update
        node._set_progress(
            status="waiting for data",
            update=update,
            start_update=update,
            env_steps=update * plan.env_steps_per_update,
            total_updates=plan.total_updates,
            total_env_steps=plan.total_updates * plan.env_steps_per_update,
        )
        while update < plan.total_updates and not node._stop.is_set():
            t0 = time.perf_counter()
            try:
                items = node._take_batch()
            except QueueClosedError:
                break
            t1 = time.perf_counter()
            with self.compute_lock:
                state, metrics = self.learner.update_parts(state, [i.trajectory for i in items])
                jax.block_until_ready(metrics)
            self.state = state
            node._publish(state)
            t2 = time.perf_counter()
            self.wait_s, self.update_s = self.wait_s + t1 - t0, self.update_s + t2 - t1
            update = int(jax.device_get(state.update_step))
            self._record(update, items, jax.device_get(metrics), t1 - t0, t2 - t1)
            if plan.checkpoint_every and update % plan.checkpoint_every == 0:
                self._save(state, update)

    def _save(self, state, update: int) -> None:
        """A checkpoint on the cadence, validated first when the run validates."""
        metrics = None
        if self.validate is not None:
            self.node._set_progress(status="validating")
            with self.compute_lock:
                metrics = self.validate(state.params, state.norm_state)
            self.log.write(update * self.node._plan.env_steps_per_update, metrics)
            self.last_validation = {"update": update, **metrics}
            self.node._set_progress(status="training", **metrics)
        self.checkpointer.save(state, metrics)

    def _record(self, update, items, metrics, wait_s, update_s) -> None:
        plan = self.node._plan
        env_steps = update * plan.env_steps_per_update
        if self.first_done is None:
            self.first_done = (time.monotonic(), update)
        scalars = self.log.scalars(env_steps, update - 1, items, metrics)
        scalars |= {
            "runtime/queue_fill": self.node._queue.size() / max(plan.items_per_update, 1),
            "runtime/learner_idle_fraction": idle_fraction(wait_s, update_s),
            "runtime/actor_rollout_s": float(np.mean([i.rollout_seconds for i in items])),
            "runtime/actor_idle_fraction": actor_idle_fraction(items),
        }
        self.log.write(env_steps, scalars)
        self.last = scalars
        self.node._set_progress(
            status="training",
            update=update,
            env_steps=env_steps,
            episodes=self.log.total_episodes,
            **scalars,
        )

    def summary(self, update: int, checkpoint_dir: str) -> dict:
        plan = self.node._plan
        now = time.monotonic()
        first_time, first_update = self.first_done or (now, update)
        steady = (update - first_update) * plan.env_steps_per_update
        return {
            "update": update,
            "start_update": self.start_update,
            "env_steps": update * plan.env_steps_per_update,
            "elapsed_s": now - self.started,
            # After the first update (compilation excluded), as a long run would see it.
            "mean_steps_per_s": steady / max(now - first_time, 1e-9),
            "learner_idle_fraction": idle_fraction(self.wait_s, self.update_s),
            "checkpoint_dir": checkpoint_dir,
            "last": dict(self.last),
            "last_validation": dict(self.last_validation),
        }
