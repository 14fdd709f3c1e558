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
    got = reward.operator_rewards(jnp.float32(300.0), 200.0, jnp.float32(0.75), 3, False, -10.0, 5)
    np.testing.assert_allclose(got, [-0.75, -0.75, -0.75], rtol=1e-6)
    cheaper = reward.operator_rewards(
        jnp.float32(180.0), 200.0, jnp.float32(1.0), 1, False, -10.0, 5
    )
    np.testing.assert_allclose(cheaper, [0.1], rtol=1e-5)


def test_operator_reward_floors_and_blackout():
    shed_at_voll = reward.operator_rewards(
        jnp.float32(1e7), 200.0, jnp.float32(1.0), 1, False, -10.0, 5
    )
    np.testing.assert_allclose(shed_at_voll, [reward.OPERATOR_LOW])
    # A blackout is charged the floor for its own step and for each step of the day it ends,
    # so ending the day is never cheaper than living through it at the floor.
    out = reward.operator_rewards(jnp.float32(100.0), 200.0, jnp.float32(1.0), 2, True, -10.0, 3)
    np.testing.assert_allclose(out, [4 * reward.OPERATOR_LOW] * 2)
    last_step = reward.operator_rewards(
        jnp.float32(100.0), 200.0, jnp.float32(1.0), 1, True, -100.0, 0
    )
    np.testing.assert_allclose(last_step, [-100.0])


def test_overload_weight_prices_only_the_overload():
    # Two in-service branches at 130 % and 90 %, one out of service at 200 %; a 0.1 Hz
    # excursion beyond a 0.2 Hz band; 2 % of demand unserved (x 5).
    loading = jnp.array([1.3, 0.9, 2.0])
    in_service = jnp.array([True, True, False])
    args = (loading, in_service, jnp.float32(0.3), 0.2, jnp.float32(0.0), jnp.float32(0.02))
    np.testing.assert_allclose(reward.safety_term(*args), 1.0 - (0.3 + 0.5 + 0.1), rtol=1e-6)
    np.testing.assert_allclose(reward.safety_term(*args, 0.1), 1.0 - (0.03 + 0.5 + 0.1), rtol=1e-6)
    np.testing.assert_allclose(reward.safety_term(*args, 0.0), 1.0 - (0.5 + 0.1), rtol=1e-6)


@pytest.fixture(scope="module")
def operator_env():
    config = default_env_config()
    config.reward = "operator"
    env, params = make_env(config)
    _, state = jax.jit(env.reset)(jax.random.key(0), params)
    step = jax.jit(lambda k, s, a: env.step(k, s, a, params))  # op by op it takes ~40 s
    action = jnp.zeros((env.spec(params).num_agents, env.spec(params).action_dim))
    return params, state, step, action


def _operator_reward_of(info, params):
    """What the reward should be: the step's cost with islanded energy at VOLL, and badness."""
    cost = info["cost"] + params.consts.voll * info["island_unserved_mwh"]
    return 1.0 - cost / params.consts.reference_cost - (1.0 - info["reward_safety"])


def test_env_pays_the_operator_reward_when_asked(operator_env):
    params, state, step, action = operator_env
    _, _, rewards, _, _, info = step(jax.random.key(1), state, action)
    np.testing.assert_allclose(rewards, _operator_reward_of(info, params), rtol=1e-5)


def test_islanded_load_is_charged_like_shed_load(operator_env):
    params, state, step, action = operator_env
    bus = 13  # ieee14 bus 14: a load bus with two branches
    grid = params.grid
    cut = np.flatnonzero(
        (np.asarray(grid.branch_from) == bus) | (np.asarray(grid.branch_to) == bus)
    )
    slots = state.episode.event_time.shape[-1]
    fill = lambda values, empty: jnp.asarray(  # noqa: E731
        list(values) + [empty] * (slots - len(values)), jnp.int32
    )
    episode = state.episode.replace(
        event_time=fill([1] * len(cut), -1),
        event_kind=fill([1] * len(cut), 0),
        event_index=fill(cut.tolist(), 0),
        event_duration=fill([100] * len(cut), 0),
    )
    _, _, rewards, _, _, info = step(jax.random.key(1), state.replace(episode=episode), action)
    islanded = float(info["island_unserved_mwh"])
    assert islanded > 0.1
    np.testing.assert_allclose(rewards, _operator_reward_of(info, params), rtol=1e-5)
    # Without the VOLL term it would be dearer by VOLL x islanded / reference.
    unpriced = 1.0 - info["cost"] / params.consts.reference_cost - (1.0 - info["reward_safety"])
    gap = params.consts.voll * islanded / params.consts.reference_cost
    np.testing.assert_allclose(
        float(unpriced - rewards[0]), min(gap, float(unpriced) - reward.OPERATOR_LOW), rtol=1e-4
    )


def test_the_overload_weight_reaches_the_step():
    config = default_env_config()
    config.overload_weight = 0.25
    _, params = make_env(config)
    assert params.consts.overload_weight == 0.25
    assert make_env(default_env_config())[1].consts.overload_weight == 1.0


def test_an_unknown_reward_is_refused():
    config = default_env_config()
    config.reward = "profit"
    with pytest.raises(ValueError, match=r"env\.reward"):
        make_env(config)
