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


class _EmptyStore:
    """A variable store that reports a version but answers with nothing, as one can while
    the run shuts down."""

    def get_version(self):
        return 10

    def get(self):
        from replay.variable_server import NO_VERSION, Variables

        return Variables(NO_VERSION, None, None)


def test_the_evaluator_node_skips_an_empty_answer_and_stops(tmp_path):
    import threading

    from configs.default import get_config
    from launch.evaluator_node import EvaluatorNode

    config = get_config()
    config.evaluator.every_updates = 1
    node = EvaluatorNode(config, [0], _EmptyStore(), str(tmp_path))
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(stats=node.run()))
    thread.start()
    timer = threading.Timer(2.5, node.stop)
    timer.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert outcome == {"stats": {}}  # it ran its loop, evaluated nothing and returned
