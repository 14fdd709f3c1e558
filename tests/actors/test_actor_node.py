import threading
import time

import jax
import numpy as np
import pytest

from actors.actor import ActorNode, item_nbytes, rollout_locks
from configs.ieee118 import get_config as ieee118_config
from learner.acting import build_env_and_policy
from replay.compute_lock import cpu_compute_lock
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
    # One item's bytes, not summed over the threads: the unit of the queue's memory bound.
    trajectory_bytes = sum(x.nbytes for x in jax.tree.leaves(first[0].trajectory))
    assert stats["item_bytes"] == item_nbytes(first[0]) > trajectory_bytes


class DroppingQueue:
    """Drops items; the actor threads run unthrottled."""

    def put(self, item, timeout=None):
        del item, timeout

    def size(self):
        return 0


@pytest.mark.slow
def test_two_threads_per_device_on_two_devices_keep_rolling_out():
    # Four concurrent ieee118 rollouts on two emulated XLA:CPU devices never completed (one
    # thread never returned its first rollout, the others stopped soon after); an actor process
    # on a CPU host now computes one rollout at a time.
    config = ieee118_config()
    config.learner.hidden_size = 8
    config.learner.unroll_length = 8
    config.env.action_interface = "setpoints"  # the threads are under test, not the market
    config.env.unit_offers = "per_unit"  # market settings
    config.env.alarm_margin = 0.0
    config.actors.num_envs = 16
    config.actors.threads_per_device = 2
    env, env_params, policy = build_env_and_policy(config)
    variables = VariableServer()
    variables.publish(0, policy.init(jax.random.PRNGKey(0)), policy.init_norm_state())
    node = ActorNode(
        config, 0, (0, 1), DroppingQueue(), variables, lambda c: (env, env_params, policy)
    )
    runner = threading.Thread(target=node.run, daemon=True)
    runner.start()
    # Two ieee118 compiles (one per device) come first; on a loaded 2-core host they alone
    # took most of 240 s. The loop ends as soon as every thread has rolled out 3 times.
    deadline = time.monotonic() + 480
    while node.stats().get("min_thread_rollouts", 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    stats = node.stats()
    node.stop()
    runner.join(timeout=60)
    assert stats["threads"] == 4
    assert stats["min_thread_rollouts"] >= 3, stats


class FakeDevice:
    def __init__(self, platform):
        self.platform = platform


def test_rollout_locks_one_per_process_on_cpu_one_per_device_on_accelerators():
    cpu = [FakeDevice("cpu"), FakeDevice("cpu")]
    locks = rollout_locks(cpu)
    assert locks[cpu[0]] is locks[cpu[1]]
    gpu = [FakeDevice("gpu"), FakeDevice("gpu")]
    locks = rollout_locks(gpu)
    assert locks[gpu[0]] is not locks[gpu[1]]


def test_learner_and_evaluator_share_the_actors_lock_on_cpu_and_lock_nothing_elsewhere():
    cpu = [FakeDevice("cpu"), FakeDevice("cpu")]
    shared = cpu_compute_lock(cpu)
    assert shared is rollout_locks(cpu)[cpu[0]]  # a local_mt learner waits for rollouts
    gpu = [FakeDevice("gpu")]
    with cpu_compute_lock(gpu):  # accelerators: a context that does not lock
        assert not shared.locked()
    with shared:
        assert shared.locked()
