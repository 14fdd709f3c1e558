import jax
import numpy as np

from launch.evaluator_node import make_greedy_episode
from tests.actors.fake_env import FakeEnv
from tests.actors.test_rollout import tiny_policy


def test_greedy_episode_counts_only_the_first_episode():
    env = FakeEnv(horizon=4)
    policy = tiny_policy(env.spec())
    params = policy.init(jax.random.PRNGKey(0))
    episode = jax.jit(make_greedy_episode(env, None, policy, steps=7))
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    returns, costs = episode(params, policy.init_norm_state(), keys)
    # Agents earn 1 and 2 per step (team mean 1.5) for the 4 steps before the first reset.
    np.testing.assert_allclose(returns, np.full(3, 6.0))
    np.testing.assert_allclose(costs, np.full(3, 2.0))
