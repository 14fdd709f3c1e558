"""Runs a program on a backend: starts nodes, restarts dead actor processes, stops cleanly.

Stopping (end of training, Ctrl-C, or a fatal error) always goes: ask every node to stop,
close the queue (wakes a learner blocked on ``take`` and actors blocked on ``put``), wait for
the learner's final checkpoint, then release the backend.
"""

from __future__ import annotations

import logging
import threading
import time

from launch.program import (
    Program,
    build_actor,
    build_evaluator,
    build_learner,
    build_queue,
    build_variable_server,
)
from launch.run_dir import write_json
from replay.types import idle_fraction

POLL_S = 0.5
# A node answers its first call once its process has started and built the node (imports,
# devices): seconds on an idle host, minutes on a loaded one. Later calls are quick.
FIRST_CALL_TIMEOUT_S = 600.0
LEARNER_EXIT_TIMEOUT_S = 300.0
ACTOR_EXIT_TIMEOUT_S = 30.0


class ActorFailedError(RuntimeError):
    """An actor node failed for good (an error in its code, or too many restarts)."""


def is_process_death(error: BaseException) -> bool:
    """A dead actor *process* (restartable), as opposed to an exception raised by its code."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return False
    return isinstance(error, ray.exceptions.RayActorError) and not isinstance(
        error, ray.exceptions.RayTaskError
    )


class Supervisor:
    def __init__(self, program: Program, backend, display=None, status_dir: str | None = None):
        self.program, self.backend, self.display = program, backend, display
        self.status_dir = status_dir  # progress.json and nodes.json are written here
        self.stop_requested = threading.Event()
        self.restarts = 0
        self.queue = build_queue(program, backend)
        self.variables = build_variable_server(program, backend)
        self.learner = build_learner(program, self.queue, self.variables, backend)
        self.actors = [
            build_actor(program, group, self.queue, self.variables, backend)
            for group in program.actor_groups
        ]
        self.evaluator = None
        if program.config.evaluator.enabled:
            self.evaluator = build_evaluator(program, self.variables, backend)
        self.incarnations = [0] * len(self.actors)
        self.deaths = [0] * len(self.actors)
        self.awaiting_restart: set[int] = set()

    def node_pids(self) -> dict[str, int]:
        """Process id of every node (the same pid for all under threads)."""
        nodes = [self.learner, *self.actors]
        return {node.name: node.call("pid", timeout=FIRST_CALL_TIMEOUT_S) for node in nodes}

    def _write_status(self, name: str, payload: dict) -> None:
        if self.status_dir:
            write_json(self.status_dir, name, payload)

    def run(self) -> dict:
        """Train until the learner finishes or a stop is requested; returns its summary."""
        self.learner.start()
        for actor in self.actors:
            actor.start(0)
        if self.evaluator is not None:
            self.evaluator.start()
        self._write_status("nodes.json", self.node_pids())
        try:
            while not self.learner.done() and not self.stop_requested.is_set():
                self._check_actors()
                self._show_progress()
                time.sleep(POLL_S)
        finally:
            summary = self._shutdown()
        return summary

    def _check_actors(self) -> None:
        for index, actor in enumerate(self.actors):
            if index in self.awaiting_restart:
                self._resume_if_back(index)
                continue
            if not actor.done():
                continue
            try:
                actor.result(timeout=0)
            except Exception as error:
                if not (actor.restartable and is_process_death(error)):
                    raise ActorFailedError(f"{actor.name} failed: {error}") from error
                self._note_death(index, error)
                continue
            if not self.stop_requested.is_set():
                raise ActorFailedError(f"{actor.name} stopped while the learner still needs data")

    def _note_death(self, index: int, error: BaseException) -> None:
        """The process died: Ray restarts it (max_restarts); we restart its loop once it is up."""
        self.restarts += 1
        self.deaths[index] += 1
        if self.deaths[index] > self.backend.max_restarts:
            raise ActorFailedError(
                f"{self.actors[index].name} died {self.deaths[index]} times; giving up"
            )
        logging.warning("%s died (%s); restarting", self.actors[index].name, type(error).__name__)
        self.awaiting_restart.add(index)

    def _resume_if_back(self, index: int) -> None:
        actor = self.actors[index]
        try:
            actor.call("pid", timeout=1.0)
        except Exception as error:  # still restarting; a permanent death fails the run
            if "restart" not in str(error).lower() and not isinstance(error, TimeoutError):
                raise ActorFailedError(f"{actor.name} could not be restarted: {error}") from error
            return
        self.awaiting_restart.discard(index)
        self.incarnations[index] += 1
        actor.start(self.incarnations[index])
        self._write_status("nodes.json", self.node_pids())

    def _show_progress(self) -> None:
        try:
            progress = self.learner.call("progress", timeout=5.0)
        except Exception:  # progress is best effort; failures surface through run()
            return
        self._write_status("progress.json", progress | {"actor_restarts": self.restarts})
        if self.display is not None:
            self.display.update(progress, self.restarts)

    def _stop_evaluator(self) -> dict:
        """The evaluator's last result; its failure never fails the run."""
        if self.evaluator is None:
            return {}
        try:
            self.evaluator.call("stop", timeout=5.0)
            return {"evaluation": self.evaluator.result(timeout=ACTOR_EXIT_TIMEOUT_S)}
        except Exception as error:
            logging.warning("evaluator: %s", error)
            self.evaluator.kill()
            return {}

    def _actor_stats(self) -> dict:
        """Summed actor counters (best effort: a dead actor contributes nothing)."""
        totals: dict = {}
        for actor in self.actors:
            try:
                stats = actor.call("stats", timeout=5.0)
            except Exception:
                continue
            for key in ("rollouts", "env_steps", "queue_wait_s", "busy_s"):
                totals[key] = totals.get(key, 0) + stats[key]
            totals["item_bytes"] = max(totals.get("item_bytes", 0), stats.get("item_bytes", 0))
        busy, wait = totals.get("busy_s", 0.0), totals.get("queue_wait_s", 0.0)
        totals["idle_fraction"] = idle_fraction(wait, busy)
        return totals

    def _shutdown(self) -> dict:
        actor_stats = self._actor_stats()
        nodes = [self.learner, *self.actors, *([self.evaluator] if self.evaluator else [])]
        compile_counts = self.backend.compile_counts(nodes)
        for node in [self.learner, *self.actors]:
            try:
                node.call("stop", timeout=5.0)
            except Exception as error:  # a dead node needs no stopping
                logging.debug("stop %s: %s", node.name, error)
        try:
            self.queue.close()
        except Exception as error:
            logging.debug("closing queue: %s", error)
        summary = self.learner.result(timeout=LEARNER_EXIT_TIMEOUT_S)
        summary |= self._stop_evaluator()
        deadline = time.monotonic() + ACTOR_EXIT_TIMEOUT_S
        for actor in self.actors:
            try:
                actor.result(timeout=max(deadline - time.monotonic(), 0.1))
            except Exception as error:  # already stopped or dead: kill to be sure
                logging.debug("%s exit: %s", actor.name, error)
                actor.kill()
        return summary | {
            "actors": actor_stats,
            "queue": self._queue_memory(actor_stats),
            "compilation_cache": compile_counts,
        }

    def _queue_memory(self, actor_stats: dict) -> dict:
        """The queue's memory bound: its capacity times one item's bytes (as the actors
        measured them; 0 when no actor put an item)."""
        capacity, item_bytes = self.program.queue_capacity, actor_stats.get("item_bytes", 0)
        return {
            "capacity": capacity,
            "item_bytes": item_bytes,
            "bound_bytes": capacity * item_bytes,
        }
