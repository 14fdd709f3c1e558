"""``TeacherRelativeEnv``: the reward against the teacher's on the same draws.

A toy env with the grid env's step contract (auto-reset, ``info["cost"]``) checks the
bookkeeping in milliseconds; ``tests/launch/test_bids_in_acting_loops.py`` steps the real env
with bids through the actors' acting step.
"""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.teacher_relative import TeacherRelativeEnv

HORIZON = 3


class ToyEnv:
    """Cost = a demand drawn from the key + |action|; a blackout when the action exceeds 1.5.

    The state is ``(t, stored)``: a nonzero action moves ``stored``, so the two copies' states
    drift apart as a policy's and its teacher's do.
    """

    def reset(self, key, params):
        state = (jnp.zeros((), jnp.int32), jax.random.uniform(key))
        return state[1], state

    def step(self, key, state, action, params):
        key_step, key_reset = jax.random.split(key)
        t, stored = state
        a = jnp.sum(action)
        demand = 10.0 * jax.random.uniform(key_step)
        cost = demand + jnp.abs(a) + stored
        terminated = a > 1.5
        t = t + 1
        truncated = (t >= HORIZON) & ~terminated
        done = terminated | truncated
        _, fresh = self.reset(key_reset, params)
        next_state = jax.tree.map(lambda f, s: jnp.where(done, f, s), fresh, (t, stored + 0.1 * a))
        reward = -cost * jnp.ones((2,))  # two agents
        return next_state[1], next_state, reward, terminated, truncated, {"cost": cost}


PARAMS = types.SimpleNamespace(consts=types.SimpleNamespace(action_interface="bids"))


def _run(actions):
    """The wrapped toy env and a plain teacher copy stepped on the same keys."""
    env = ToyEnv()
    wrapped = TeacherRelativeEnv(env, PARAMS)
    _, pair = wrapped.reset(jax.random.key(0), PARAMS)
    _, teacher = env.reset(jax.random.key(0), PARAMS)
    out = []
    for i, action in enumerate(actions):
        key = jax.random.key(i + 1)
        _, pair, shaped, terminated, truncated, info = wrapped.step(
            key, pair, jnp.full((2, 1), action), PARAMS
        )
        _, teacher, t_reward, *_ = env.step(key, teacher, jnp.zeros((2, 1)), PARAMS)
        out.append((np.asarray(shaped), np.asarray(t_reward), info, bool(terminated | truncated)))
        if terminated | truncated:
            teacher = pair.teacher  # the reference copy restarts with the policy too
    return out


def test_the_teacher_earns_nothing_over_itself_across_resets():
    for shaped, _, info, _ in _run([0.0] * 7):
        np.testing.assert_array_equal(shaped, 0.0)
        assert info["teacher_cost"] == info["cost"]


def test_the_reward_is_the_policys_minus_the_teachers_on_the_same_draws():
    actions = [0.5, -0.3, 0.2, 0.4, 0.0, 0.7, 0.0]  # crosses two resets at the horizon
    for action, (shaped, t_reward, info, _) in zip(actions, _run(actions), strict=True):
        np.testing.assert_allclose(shaped, -info["cost"] - t_reward, rtol=1e-6)
        np.testing.assert_allclose(info["teacher_cost"], -t_reward[0], rtol=1e-6)
        if action:
            assert np.all(shaped < 0.0)  # |action| costs more than the teacher's zero


def test_a_policy_blackout_restarts_the_teacher_in_the_policys_new_episode():
    out = _run([2.0, 0.0, 0.0])  # a blackout on the first step ends the episode
    assert out[0][3]
    for shaped, _, info, _ in out[1:]:
        np.testing.assert_array_equal(shaped, 0.0)  # the teacher copy is the policy's again
        assert info["teacher_cost"] == info["cost"]


def test_a_teacher_blackout_stops_its_reward_until_the_policy_restarts():
    class TeacherFails(ToyEnv):
        def step(self, key, state, action, params):  # the zero action blacks out
            out = super().step(key, state, action, params)
            failed = jnp.all(action == 0.0)
            return (*out[:3], out[3] | failed, out[4] & ~failed, out[5])

    wrapped = TeacherRelativeEnv(TeacherFails(), PARAMS)
    _, pair = wrapped.reset(jax.random.key(0), PARAMS)
    live = []
    for i in range(HORIZON + 1):
        _, pair, shaped, _, _, info = wrapped.step(
            jax.random.key(i + 1), pair, jnp.full((2, 1), 0.1), PARAMS
        )
        live.append(float(info["teacher_live"]))
        if not info["teacher_live"]:
            np.testing.assert_allclose(shaped, -info["cost"])  # the plain reward
            assert info["teacher_cost"] == 0.0
    # live on the first step; gone after the teacher's blackout; back at the policy's reset
    assert live == [1.0, 0.0, 0.0, 1.0]


def test_setpoints_have_no_teacher():
    env, params = make_env(default_env_config())
    with pytest.raises(ValueError, match="action_interface"):
        TeacherRelativeEnv(env, params)
