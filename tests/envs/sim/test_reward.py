"""Reward terms against numbers worked out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.sim import reward


def test_operator_reward_is_linear_in_cost():
    # 1 - cost / reference - badness, the same for every agent.
    got = reward.operator_rewards(jnp.float32(300.0), 200.0, jnp.float32(0.75), 3, False, -10.0)
    np.testing.assert_allclose(got, [-0.75, -0.75, -0.75], rtol=1e-6)
    cheaper = reward.operator_rewards(jnp.float32(180.0), 200.0, jnp.float32(1.0), 1, False, -10.0)
    np.testing.assert_allclose(cheaper, [0.1], rtol=1e-5)


def test_operator_reward_floors_and_blackout():
    shed_at_voll = reward.operator_rewards(
        jnp.float32(1e7), 200.0, jnp.float32(1.0), 1, False, -10.0
    )
    np.testing.assert_allclose(shed_at_voll, [reward.OPERATOR_LOW])
    # A blackout costs at least as much as the worst step that keeps the grid running.
    out = reward.operator_rewards(jnp.float32(100.0), 200.0, jnp.float32(1.0), 2, True, -10.0)
    np.testing.assert_allclose(out, [reward.OPERATOR_LOW] * 2)


def test_env_pays_the_operator_reward_when_asked():
    config = default_env_config()
    config.reward = "operator"
    env, params = make_env(config)
    _, state = jax.jit(env.reset)(jax.random.key(0), params)
    action = jnp.zeros((env.spec(params).num_agents, env.spec(params).action_dim))
    step = jax.jit(lambda k, s, a: env.step(k, s, a, params))  # op by op it takes ~40 s
    _, _, rewards, _, _, info = step(jax.random.key(1), state, action)
    expected = 1.0 - info["cost"] / params.consts.reference_cost - (1.0 - info["reward_safety"])
    np.testing.assert_allclose(rewards, expected, rtol=1e-5)


def test_an_unknown_reward_is_refused():
    config = default_env_config()
    config.reward = "profit"
    with pytest.raises(ValueError, match=r"env\.reward"):
        make_env(config)
