"""The contracts between the actors and the learner: what flows through the queue, and how.

``actors`` and ``learner`` never import each other; both import this module. Axis order is
``[T, B, A, ...]``: time, batch of grids, agents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:  # annotations only: the queue and its errors stay importable without JAX
    import jax
    import numpy as np


class QueueTimeoutError(TimeoutError):
    """A put or take waited longer than its timeout."""


class QueueClosedError(RuntimeError):
    """The queue was closed (the run is shutting down)."""


class Trajectory(NamedTuple):
    """A batch of unrolls produced by actors, consumed by ``Learner.update``.

    ``action`` is the *post-squash* action in [-1, 1] exactly as sampled by the policy
    (padded action dims and padded agents hold 0); ``log_prob`` is the log-density of that
    action under the behaviour policy, as returned by ``ActingPolicy.act`` (0 for padded
    agents). Values are in the critic's units (returns of rewards scaled by the learner's
    reward normaliser).

    Bootstrapping: ``last_value[b] = V(obs after step T-1)`` (the observation the
    next unroll starts from). At a step where the episode was truncated (time
    limit) the environment auto-resets, so ``truncation_value[t, b] =
    V(info["final_obs"])`` carries the value of the state it was cut at; it is 0
    wherever ``truncated`` is False. At terminated steps nothing is bootstrapped.
    """

    obs: jax.Array  # [T, B, A, O] float32, raw (unnormalised) agent observations
    global_state: jax.Array  # [T, B, S] float32, raw global state
    action: jax.Array  # [T, B, A, U] float32 in [-1, 1], post-squash
    log_prob: jax.Array  # [T, B, A] float32, behaviour log-prob of `action`
    value: jax.Array  # [T, B, A] float32, V(obs_t) from the behaviour critic
    reward: jax.Array  # [T, B, A] float32, raw per-agent reward of step t
    terminated: jax.Array  # [T, B] bool, episode ended in a terminal state at step t
    truncated: jax.Array  # [T, B] bool, episode cut by a time limit at step t
    truncation_value: jax.Array  # [T, B, A] float32, V(final_obs_t) where truncated, else 0
    # [T, B] int32, the scenario of the episode step t belongs to (envs.sim.scenarios): the
    # learner may normalise advantages per scenario (learner.advantage_groups).
    scenario: jax.Array
    last_value: jax.Array  # [B, A] float32, V(obs after step T-1)


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


class ActingPolicy(Protocol):
    """What acting needs of a policy (``learner.policy.Policy`` is one). Pure functions;
    B grids, A agents, U action dims; ``norm_state`` is the learner's normaliser state."""

    def act(self, params: Any, norm_state: Any, obs: Any, key: jax.Array, noise=None) -> tuple:
        """``(action [B,A,U], log_prob [B,A], value [B,A])``, sampled (with ``noise``, a
        standard normal ``[B,A,U]``, in place of a fresh draw)."""
        ...

    def init_noise(self, key: jax.Array, num_grids: int) -> jax.Array | None:
        """The exploration noise a rollout carries from step to step, or None (fresh draws)."""
        ...

    def next_noise(self, key: jax.Array, noise: jax.Array) -> jax.Array:
        """The next step's carried exploration noise."""
        ...

    def value(self, params: Any, norm_state: Any, obs: Any) -> jax.Array:
        """``V(obs)`` ``[B,A]``."""
        ...


def idle_fraction(waited_s: float, busy_s: float) -> float:
    """Share of a node's time spent waiting (an actor blocked on a full queue, the learner on
    an empty one): the one formula every progress line and summary reports."""
    return waited_s / max(waited_s + busy_s, 1e-9)
