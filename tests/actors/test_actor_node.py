import threading

import jax
import numpy as np

from actors.actor import ActorNode
from replay.trajectory_queue import TrajectoryQueue
from replay.variable_server import VariableServer
from tests.actors.fake_env import FakeEnv
from tests.actors.test_rollout import tiny_policy
from tests.launch.tiny import tiny_config


def fake_parts(config):
    env = FakeEnv(horizon=4)
    return env, None, tiny_policy(env.spec())


def test_actor_threads_stamp_versions_and_pick_up_new_params():
    config = tiny_config()
    config.actors.threads_per_device = 2
    queue, variables = TrajectoryQueue(capacity=2), VariableServer()
    policy = tiny_policy(FakeEnv(4).spec())
    params = policy.init(jax.random.PRNGKey(0))
    variables.publish(0, params, policy.init_norm_state())
    node = ActorNode(config, 10, (0,), queue, variables, make_env_and_policy=fake_parts)
    runner = threading.Thread(target=node.run)
    runner.start()
    first = queue.take(2, timeout=120)
    assert {item.actor_id for item in first} <= {10, 11}
    assert all(item.policy_version == 0 for item in first)
    shape = first[0].trajectory.reward.shape
    assert shape == (config.learner.unroll_length, config.actors.num_envs, 2)
    variables.publish(7, jax.tree.map(np.zeros_like, params), policy.init_norm_state())
    seen = set()
    for _ in range(8):  # the queue holds at most 2 stale items per thread
        seen |= {item.policy_version for item in queue.take(1, timeout=60)}
        if 7 in seen:
            break
    assert 7 in seen
    node.stop()
    queue.close()
    runner.join(timeout=60)
    assert not runner.is_alive()
    stats = node.stats()
    assert stats["threads"] == 2 and stats["rollouts"] >= 2 and stats["param_updates"] >= 3
    assert 0 <= stats["min_thread_rollouts"] <= stats["rollouts"] // 2
