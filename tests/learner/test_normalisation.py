"""Normalisers: Chan merge, cross-device moments, forward returns and per-type reward stats."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from learner import normalisation
from learner.types import RunningMoments


def test_merge_moments_hand_values():
    # {0, 2}: n 2, mean 1, var 1;  {4, 6, 8}: n 3, mean 6, var 8/3
    # all five {0,2,4,6,8}: mean 4, var (16+4+0+4+16)/5 = 8
    merged = normalisation.merge_moments(
        RunningMoments(jnp.asarray(2.0), jnp.array([1.0]), jnp.array([1.0])),
        RunningMoments(jnp.asarray(3.0), jnp.array([6.0]), jnp.array([8.0 / 3.0])),
    )
    np.testing.assert_allclose(merged.count, 5.0)
    np.testing.assert_allclose(merged.mean, [4.0], rtol=1e-6)
    np.testing.assert_allclose(merged.var, [8.0], rtol=1e-6)


def test_batch_moments_over_two_devices_equal_whole_batch():
    x = jnp.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0], [6.0, 1.0], [8.0, 1.0], [10.0, 1.0]])
    whole = normalisation.batch_moments(x)
    # {0,2,4,6,8,10}: mean 5, var (25+9+1+1+9+25)/6 = 70/6; the constant column has var 0.
    np.testing.assert_allclose(whole.mean, [5.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(whole.var, [70.0 / 6.0, 0.0], rtol=1e-6, atol=1e-7)
    mesh = Mesh(np.asarray(jax.devices()[:2]), ("d",))
    sharded = jax.shard_map(
        lambda v: normalisation.batch_moments(v, "d"),
        mesh=mesh,
        in_specs=P("d"),
        out_specs=P(),
    )(x)
    np.testing.assert_allclose(sharded.count, 6.0)
    np.testing.assert_allclose(sharded.mean, whole.mean, rtol=1e-6)
    np.testing.assert_allclose(sharded.var, whole.var, rtol=1e-6, atol=1e-7)


def test_normalise_hand_value_and_clip():
    stats = RunningMoments(jnp.asarray(5.0), jnp.array([4.0, 0.0]), jnp.array([8.0, 1e-6]))
    out = normalisation.normalise(jnp.array([[6.0, 1.0]]), stats, clip=5.0)
    # (6 - 4) / sqrt(8) = 0.7071; (1 - 0) / sqrt(1e-6) = 1000 -> clipped to 5
    np.testing.assert_allclose(out, [[2.0 / math.sqrt(8.0), 5.0]], rtol=1e-5)


def test_discounted_returns_forward_resets_after_episode_end():
    # gamma 0.5, rewards 1 each, episode ends at t=1: G = [1, 1.5, 1, 1.5]
    returns = normalisation.discounted_returns_forward(
        jnp.ones((4, 1)), jnp.array([[0.0], [1.0], [0.0], [0.0]]), jnp.array([0.5])
    )
    np.testing.assert_allclose(returns[:, 0], [1.0, 1.5, 1.0, 1.5])


def test_reward_stats_per_type_ignore_padded_agents():
    # Agents: 0 -> type 0, 1 -> type 1, 2 padded. Returns over two samples:
    # type 0 sees {1, 3} (mean 2, var 1), type 1 sees {2, 4} (mean 3, var 1); 9s are padding.
    weight = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    returns = jnp.array([[1.0, 2.0, 9.0], [3.0, 4.0, 9.0]])
    start = RunningMoments.zeros((2,), per_element_count=True)
    stats = normalisation.update_reward_stats(start, returns, weight)
    np.testing.assert_allclose(stats.count, [2.0, 2.0], atol=1e-3)
    np.testing.assert_allclose(stats.mean, [2.0, 3.0], rtol=1e-3)
    np.testing.assert_allclose(stats.var, [1.0, 1.0], rtol=1e-3)
    np.testing.assert_allclose(normalisation.reward_scale(stats), [1.0, 1.0], rtol=1e-3)
