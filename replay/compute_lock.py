"""The lock that computations on XLA:CPU devices take turns on, one per process.

Actor rollouts (``actors.actor.rollout_locks``), learner updates (``learner.node``) and
evaluations (``launch.evaluator_node``) all hold it while they compute on CPU devices. It is
per process, not per node: ``local_mt`` runs several actor nodes and the learner in one
process. It lives in ``replay``, the runtime both actors and learner import.
"""

from __future__ import annotations

import contextlib
import threading

CPU_COMPUTE_LOCK = threading.Lock()


def cpu_compute_lock(devices):
    """What a node holds while its computation runs on ``devices``: on XLA:CPU the process's
    one lock (see ``actors.actor.rollout_locks``), so the learner of a ``local_mt`` run never
    executes while an actor rollout does; elsewhere nothing (a context that does not lock)."""
    if all(device.platform == "cpu" for device in devices):
        return CPU_COMPUTE_LOCK
    return contextlib.nullcontext()
