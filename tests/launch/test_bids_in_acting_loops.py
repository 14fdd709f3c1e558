"""The acting loops hand the policy's bids to the env, which clears them.

The actors' and the training loop's acting step (``replay.rollout.make_acting_step``) and the
evaluator node's greedy episode step an env whose ``action_interface`` is ``"bids"`` with a
policy that bids zero. The env they step must apply the myopic OPF's dispatch: the same
costs and outputs as a setpoint env given that dispatch directly, and not the raw action
read as setpoints (what both loops did before the env owned the clearing).

The acting step runs under ``TeacherRelativeEnv`` (``learner.reward_baseline="teacher"``), so
one compile also checks that the teacher's copy clears the same zero bids: a zero-bid policy
earns nothing over its teacher.
"""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.action_interface import BID_QP_ITERATIONS
from envs.config import default_env_config
from envs.env import make_env
from envs.opf import baselines
from envs.teacher_relative import TeacherRelativeEnv
from launch.evaluator_node import make_greedy_episode
from replay.rollout import make_acting_step
from tests.batched_env import reset_batch

BATCH = 2


@pytest.fixture(scope="module")
def market():
    config = default_env_config()
    config.action_interface, config.bid_scale, config.horizon = "bids", 20.0, 12
    env, params = make_env(config)
    spec = env.spec(params)
    shape = (BATCH, spec.num_agents)
    zeros = jnp.zeros((*shape, spec.action_dim))
    policy = types.SimpleNamespace(
        mode=lambda params, norm_state, obs: zeros,
        act=lambda params, norm_state, obs, key: (zeros, jnp.zeros(shape), jnp.zeros(shape)),
        value=lambda params, norm_state, obs: jnp.zeros(shape),
    )
    direct = params.replace(consts=dataclasses.replace(params.consts, action_interface="setpoints"))
    step = jax.jit(lambda k, s, a: jax.vmap(env.step, in_axes=(0, 0, 0, None))(k, s, a, direct))
    myopic = jax.jit(baselines.myopic_opf_baseline(params, max_iter=BID_QP_ITERATIONS))
    return env, params, policy, zeros, step, myopic


def _expect_cleared(market, state, obs, step_keys, got_cost):
    """``got_cost [B]`` is the myopic OPF's dispatch's cost, far from the raw action's."""
    _, _, _, zeros, step, myopic = market
    cleared = myopic(obs, state, None, None)
    want = np.asarray(step(step_keys, state, cleared)[5]["cost"])
    raw = np.asarray(step(step_keys, state, zeros)[5]["cost"])
    np.testing.assert_allclose(got_cost, want, rtol=1e-4)
    assert np.all(np.abs(raw - want) > 0.01 * want)


def test_the_acting_step_of_actors_and_training_loop_steps_the_cleared_dispatch(market):
    env, params, policy, *_ = market
    wrapped = TeacherRelativeEnv(env, params)
    keys = jax.random.split(jax.random.key(5), BATCH)
    obs, pair = jax.jit(jax.vmap(wrapped.reset, in_axes=(0, None)))(keys, params)
    key = jax.random.key(6)
    acting_step = jax.jit(make_acting_step(policy, wrapped, params))
    transition, _, _, info = acting_step(None, None, obs, pair, key)
    np.testing.assert_array_equal(transition.action, 0.0)  # PPO's action: the bids
    _, key_env = jax.random.split(key)
    _expect_cleared(market, pair.policy, obs, jax.random.split(key_env, BATCH), info["cost"])
    np.testing.assert_allclose(info["teacher_cost"], info["cost"], rtol=1e-6)
    np.testing.assert_array_equal(transition.reward, 0.0)


def test_the_evaluator_nodes_greedy_episode_steps_the_cleared_dispatch(market):
    env, params, policy, *_ = market
    keys = jax.random.split(jax.random.key(7), BATCH)
    _, cost = jax.jit(make_greedy_episode(env, params, policy, steps=1))(None, None, keys)
    obs, state = reset_batch(keys, params)
    step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, 0)
    _expect_cleared(market, state, obs, step_keys, cost)
