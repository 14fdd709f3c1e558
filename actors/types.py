"""What an actor hands to the trajectory queue."""

from typing import NamedTuple

import numpy as np

from learner.types import Trajectory


class EpisodeTotals(NamedTuple):
    """Sums over the episodes that *finished* during one rollout (divide by ``finished``).

    ``info_sums`` holds, per scalar key of the env's ``info`` dict (reward terms, cost,
    unserved energy, overloads, trips, ...), the sum over finished episodes of each episode's
    total. Arrays are on host after ``jax.device_get``.
    """

    finished: np.ndarray  # [] int32, episodes that ended in this rollout
    return_sum: np.ndarray  # [A] float32, summed episode returns per agent
    length_sum: np.ndarray  # [] float32, summed episode lengths
    info_sums: dict  # {key: [] float32}


class TrajectoryItem(NamedTuple):
    """One queue item: a rollout of one actor thread, stamped for the learner."""

    trajectory: Trajectory  # host NumPy arrays, [T, B, A, ...]
    policy_version: int  # version of the parameters that acted
    actor_id: int  # global actor-thread index
    episodes: EpisodeTotals
    rollout_seconds: float  # wall time of the rollout (compute + transfer)
    previous_put_wait_seconds: float = 0.0  # this thread's last blocked put (actor idle time)
