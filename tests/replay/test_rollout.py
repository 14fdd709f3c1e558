from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from actors.rollout import make_rollout as make_actor_rollout
from envs.types import Observation
from learner.train_loop import make_rollout as make_train_loop_rollout
from replay.rollout import RolloutCarry, batched_env_step, rollout
from tests.actors.fake_env import NUM_AGENTS, FakeEnv
from tests.actors.test_rollout import tiny_policy


class KeyEchoEnv:
    """``step`` hands back the key it was given and the state plus the action."""

    def step(self, key, state, action, params):
        return key, state + action * params


def test_each_grid_steps_with_its_own_key_split_from_one():
    step_grids = batched_env_step(KeyEchoEnv(), 10.0)
    key = jax.random.PRNGKey(3)
    keys, states = step_grids(key, jnp.zeros(4), jnp.arange(4.0))
    np.testing.assert_array_equal(keys, jax.random.split(key, 4))
    np.testing.assert_array_equal(states, [0.0, 10.0, 20.0, 30.0])


def test_rollout_scans_one_split_key_per_step_and_stacks_outputs():
    def count_and_echo(carry, key):
        return carry + 1, key

    key = jax.random.PRNGKey(5)
    carry, keys = rollout(count_and_echo, 0, key, 7)
    assert int(carry) == 7
    np.testing.assert_array_equal(keys, jax.random.split(key, 7))


def test_actor_and_train_loop_roll_out_the_same_trajectory():
    env = FakeEnv(horizon=5)
    policy = tiny_policy(env.spec())
    params, norm_state = policy.init(jax.random.PRNGKey(0)), policy.init_norm_state()
    init_carry, actor_rollout = make_actor_rollout(env, None, policy, 6)
    carry = init_carry(jax.random.PRNGKey(1), 3)
    key = jax.random.PRNGKey(2)
    _, from_actor, _ = jax.jit(actor_rollout)(params, norm_state, carry, key)
    every_agent_real = np.ones(NUM_AGENTS, bool)  # the loop zeroes padded agents' rewards only
    train_loop_rollout = make_train_loop_rollout(env, None, policy, every_agent_real, 6)
    start = RolloutCarry(carry.env_state, carry.obs)
    _, from_loop, _ = train_loop_rollout(params, norm_state, start, key)
    assert bool(from_actor.truncated.any())  # the bootstrap path ran
    # The same keys, steps and actions; the two are separately compiled programs, whose float
    # results may differ in the last bit (XLA:CPU rounds a transcendental function differently
    # where it vectorises it), so floats are compared to a few ulps, the rest exactly.
    jax.tree.map(partial(np.testing.assert_allclose, rtol=1e-6, atol=1e-7), from_actor, from_loop)


def test_a_rollout_carries_correlated_exploration_noise_between_steps():
    # The pre-squash deviation of the sampled action from the mean is std x the noise: under
    # a correlation of 0.95 consecutive steps' deviations correlate (and the carry hands the
    # noise on to the next rollout); under independent draws they do not.
    env = FakeEnv(horizon=1000)
    lag_one = {}
    for c in (0.0, 0.95):
        policy = tiny_policy(env.spec(), exploration_noise_correlation=c)
        params, norm_state = policy.init(jax.random.PRNGKey(0)), policy.init_norm_state()
        init_carry, actor_rollout = make_actor_rollout(env, None, policy, 64)
        carry = init_carry(jax.random.PRNGKey(1), 32)
        assert (carry.noise is None) == (c == 0.0)
        run = jax.jit(actor_rollout)
        carry, first, _ = run(params, norm_state, carry, jax.random.PRNGKey(2))
        _, second, _ = run(params, norm_state, carry, jax.random.PRNGKey(3))
        actions = np.concatenate([first.action, second.action])  # [T, B, A, U]
        # The mean actions of every step in one compiled call (op by op, 128 steps of the
        # policy took most of this test's time).
        mode = jax.jit(
            jax.vmap(
                lambda params, norm_state, obs, state, policy=policy: policy.mode(
                    params, norm_state, Observation(obs, state)
                ),
                in_axes=(None, None, 0, 0),
            )
        )
        mean = np.concatenate(
            [mode(params, norm_state, part.obs, part.global_state) for part in (first, second)]
        )
        deviation = np.arctanh(np.clip(actions, -0.999999, 0.999999)) - np.arctanh(mean)
        deviation = deviation.reshape(deviation.shape[0], -1)
        lag_one[c] = np.corrcoef(deviation[:-1].ravel(), deviation[1:].ravel())[0, 1]
    assert abs(lag_one[0.0]) < 0.1
    assert lag_one[0.95] > 0.85
