"""Running observation statistics and reward scaling (pure functions).

Moments are merged with Chan et al.'s parallel update::

    n = n_a + n_b,  delta = mean_b - mean_a
    mean = mean_a + delta * n_b / n
    var  = (var_a * n_a + var_b * n_b + delta**2 * n_a * n_b / n) / n

Across learner devices the batch moments are first combined with ``psum`` over
the named axis, so every device ends with the statistics of the whole batch.
"""

import chex
import jax
import jax.numpy as jnp

from envs.types import EnvSpec, Observation
from learner.types import NormState, RunningMoments

NORM_EPS = 1e-8


def init_norm_state(spec: EnvSpec) -> NormState:
    """Identity normaliser (mean 0, var 1) for the spec's shapes."""
    return NormState(
        agent_obs=RunningMoments.zeros((spec.num_agents, spec.obs_dim)),
        global_state=RunningMoments.zeros((spec.global_dim,)),
        reward=RunningMoments.zeros((spec.num_agent_types,), per_element_count=True),
    )


def merge_moments(stats: RunningMoments, batch: RunningMoments) -> RunningMoments:
    """Chan's merge of running moments with a batch's moments (same trailing shape)."""
    chex.assert_equal_shape([stats.mean, batch.mean, stats.var, batch.var])
    chex.assert_equal_shape([stats.count, batch.count])
    count = stats.count + batch.count
    delta = batch.mean - stats.mean
    mean = stats.mean + delta * (batch.count / count)
    m2 = stats.var * stats.count + batch.var * batch.count
    m2 = m2 + jnp.square(delta) * (stats.count * batch.count / count)
    return RunningMoments(count=count, mean=mean, var=m2 / count)


def batch_moments(x: jax.Array, axis_name: str | None = None) -> RunningMoments:
    """Moments of ``x`` ``[N, ...]`` over its leading axis (over all devices when ``axis_name``).

    Returns ``RunningMoments`` with scalar ``count`` and ``mean``/``var`` of shape
    ``x.shape[1:]``; the variance is the population variance of the whole batch.
    """
    count = jnp.asarray(x.shape[0], jnp.float32)
    # Column sums as a ones-vector matmul on the [N, features] view: half the time of XLA:CPU's
    # reduction of the learner's [T * B, A, O] observations.
    rows = x.reshape((x.shape[0], -1))
    ones = jnp.ones((x.shape[0],), x.dtype)
    total = (ones @ rows).reshape(x.shape[1:])
    if axis_name is not None:
        count = jax.lax.psum(count, axis_name)
        total = jax.lax.psum(total, axis_name)
    mean = total / count
    squared = (ones @ jnp.square(rows - mean.reshape((1, -1)))).reshape(x.shape[1:])
    if axis_name is not None:
        squared = jax.lax.psum(squared, axis_name)
    return RunningMoments(count=count, mean=mean, var=squared / count)


def normalise(x: jax.Array, stats: RunningMoments, clip: float) -> jax.Array:
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)``; ``stats`` broadcast over leading axes.

    Computed on the ``[leading, stats.size]`` view, where the statistics broadcast along rows:
    XLA:CPU ran the same on ``[B, A, O]`` at a fraction of the speed.
    """
    rows = x.reshape((-1, stats.mean.size))
    mean = stats.mean.reshape((1, -1))
    std = jnp.sqrt(stats.var + NORM_EPS).reshape((1, -1))
    return jnp.clip((rows - mean) / std, -clip, clip).reshape(x.shape)


def normalise_observation(
    obs: Observation, norm_state: NormState, clip: float, enabled: bool = True
) -> Observation:
    """Normalise a (batched) Observation ``[..., A, O]`` / ``[..., S]`` with running stats."""
    if not enabled:
        return obs
    return Observation(
        agent_obs=normalise(obs.agent_obs, norm_state.agent_obs, clip),
        global_state=normalise(obs.global_state, norm_state.global_state, clip),
    )


def update_observation_stats(
    norm_state: NormState,
    agent_obs: jax.Array,
    global_state: jax.Array,
    axis_name: str | None = None,
) -> NormState:
    """Merge a batch of observations ``[N, A, O]`` and global states ``[N, S]`` into the stats."""
    obs_batch = batch_moments(agent_obs, axis_name)
    global_batch = batch_moments(global_state, axis_name)
    return norm_state.replace(
        agent_obs=merge_moments(norm_state.agent_obs, obs_batch),
        global_state=merge_moments(norm_state.global_state, global_batch),
    )


def discounted_returns_forward(reward: jax.Array, done: jax.Array, gamma: jax.Array) -> jax.Array:
    """Forward discounted return within an unroll: ``G_t = r_t + gamma * (1 - done_{t-1}) * G_{t-1}``.

    ``G_{-1} = 0``: the unroll's first step starts a fresh accumulator, an
    approximation (the learner never sees the previous unroll) that only
    matters for the scale estimate.

    Args:
      reward: ``[T, N]``; done: ``[T, N]`` (episode ended at step t); gamma: ``[N]``.
    Returns ``[T, N]``.
    """
    chex.assert_rank([reward, done, gamma], [2, 2, 1])
    chex.assert_equal_shape([reward, done])

    def step(carry, inputs):
        r, d = inputs
        ret = r + gamma * carry
        return ret * (1.0 - d), ret

    init = jnp.zeros_like(reward[0])
    _, returns = jax.lax.scan(step, init, (reward, done.astype(reward.dtype)))
    return returns


def update_reward_stats(
    stats: RunningMoments,
    returns: jax.Array,
    type_weight: jax.Array,
    axis_name: str | None = None,
) -> RunningMoments:
    """Merge per-agent-type moments of discounted returns ``[N, A]`` into ``stats`` (``[K]``).

    ``type_weight`` ``[A, K]`` says which agents feed which type's statistic
    (one-hot of the agent type, zero rows for padded agents; all ones in every
    column for a single global scale). ``stats.count`` is ``[K]``.
    """
    chex.assert_rank([returns, type_weight], [2, 2])
    chex.assert_equal_shape([stats.mean, stats.var, stats.count, type_weight[0]])
    values = returns[:, :, None]  # [N, A, 1]
    weight = type_weight[None]  # [1, A, K]
    count = jnp.sum(weight, axis=1) * returns.shape[0]  # [1, K]
    count = count[0]
    total = jnp.sum(weight * values, axis=(0, 1))
    if axis_name is not None:
        count = jax.lax.psum(count, axis_name)
        total = jax.lax.psum(total, axis_name)
    mean = total / jnp.maximum(count, 1.0)
    squared = jnp.sum(weight * jnp.square(values - mean[None, None]), axis=(0, 1))
    if axis_name is not None:
        squared = jax.lax.psum(squared, axis_name)
    batch = RunningMoments(count=count, mean=mean, var=squared / jnp.maximum(count, 1.0))
    return merge_moments(stats, batch)


def reward_scale(stats: RunningMoments) -> jax.Array:
    """Per-type divisor ``sqrt(var + eps)`` of the return statistics, ``[K]``."""
    return jnp.sqrt(stats.var + NORM_EPS)
