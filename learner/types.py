"""Pytrees of the learner: the trajectory batch, normaliser statistics and the learner state.

Axis order everywhere is ``[T, B, A, ...]``: time, batch of grids, agents.
``NamedTuple`` for data that flows (trajectories), ``flax.struct.dataclass`` for
state that is ``.replace()``-d (normalisers, learner state).
"""

from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp


class Trajectory(NamedTuple):
    """A batch of unrolls produced by actors, consumed by ``Learner.update``.

    ``action`` is the *post-squash* action in [-1, 1] exactly as sent to the
    environment (padded action dims and padded agents hold 0); ``log_prob`` is
    the log-density of that action under the behaviour policy, as returned by
    ``Policy.act`` (0 for padded agents). Values are in the critic's units
    (returns of rewards scaled by ``NormState.reward``).

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
    last_value: jax.Array  # [B, A] float32, V(obs after step T-1)


@flax.struct.dataclass
class RunningMoments:
    """Running mean and (population) variance of a stream, merged batch by batch (Chan et al.).

    ``count`` starts at a tiny positive number so the first merge is a plain
    weighted average and nothing divides by zero.
    """

    count: jax.Array  # [] (or the shape of mean when counts differ per element) float32
    mean: jax.Array  # [...] float32
    var: jax.Array  # [...] float32

    @classmethod
    def zeros(cls, shape: tuple[int, ...], per_element_count: bool = False) -> "RunningMoments":
        count_shape = shape if per_element_count else ()
        return cls(
            count=jnp.full(count_shape, 1e-4, jnp.float32),
            mean=jnp.zeros(shape, jnp.float32),
            var=jnp.ones(shape, jnp.float32),
        )


@flax.struct.dataclass
class NormState:
    """Normaliser statistics: part of the checkpoint and an argument of every ``Policy`` call.

    ``agent_obs`` keeps one statistic per (agent, feature) because padded
    observation slots of different agents hold different quantities.
    ``reward`` holds, per agent type, the moments of the discounted return
    (with that type's gamma); rewards are divided by its standard deviation.
    """

    agent_obs: RunningMoments  # mean/var [A, O]
    global_state: RunningMoments  # mean/var [S]
    reward: RunningMoments  # count/mean/var [K] (K = number of agent types), of discounted returns


@flax.struct.dataclass
class LearnerState:
    """Everything the learner carries from one update to the next (and checkpoints)."""

    params: Any  # {"actor": ..., "critic": ...} flax parameter trees
    opt_state: Any  # optax state (wrapped in optax.apply_if_finite)
    norm_state: NormState
    key: jax.Array  # raw PRNG key data (jax.random.key_data) for minibatch shuffling
    update_step: jax.Array  # [] int32, completed calls of Learner.update
    skipped_updates: jax.Array  # [] int32, minibatch updates skipped for non-finite values
