import socket

import numpy as np
import pytest

from launch.cluster import (
    check_head_reachable,
    node_names,
    parse_address,
    placement_bundles,
    use_ray_token_auth_if_available,
)
from launch.metrics import EpisodeWindow, policy_lag, scalar_metrics
from launch.program import build_program
from launch.progress import progress_line
from replay.types import EpisodeTotals, TrajectoryItem
from tests.launch.tiny import tiny_config


def test_cluster_graph_has_one_bundle_per_node_sized_by_devices():
    config = tiny_config()
    config.runtime.platform = "gpu"
    config.runtime.actor_processes = 2
    config.runtime.actor_devices = "0,1,2,3"
    config.runtime.learner_devices = "4,5"
    program = build_program(config, "unused", host_devices=8)
    assert node_names(program) == ["learner", "actor-0", "actor-1"]
    bundles = placement_bundles(program, cpus=2)
    assert bundles == [{"CPU": 2, "GPU": 2}, {"CPU": 2, "GPU": 2}, {"CPU": 2, "GPU": 2}]


def item(version, finished, returns, cost):
    totals = EpisodeTotals(
        finished=np.int32(finished),
        return_sum=np.asarray(returns, np.float32),
        length_sum=np.float32(10 * finished),
        info_sums={"cost": np.float32(cost)},
    )
    return TrajectoryItem(None, version, 0, totals, 0.1)


def test_episode_window_means_per_agent_type_and_info():
    window = EpisodeWindow(np.array([0, 1, 1]), ("producer", "consumer"), window=100)
    window.add([item(0, 2, [2.0, 4.0, 6.0], 8.0), item(1, 0, [0, 0, 0], 0.0)])
    window.add([item(1, 2, [6.0, 0.0, 2.0], 4.0)])
    means = window.means()
    # 4 episodes: per-agent mean returns are (2, 1, 2).
    np.testing.assert_allclose(means["episode/return"], 5.0 / 3.0)
    np.testing.assert_allclose(means["episode/return_producer"], 2.0)
    np.testing.assert_allclose(means["episode/return_consumer"], 1.5)
    np.testing.assert_allclose(means["episode/cost"], 3.0)
    np.testing.assert_allclose(means["step/cost"], 0.3)
    assert window.total_episodes == 4


def test_policy_lag_and_learner_metric_names():
    assert policy_lag([item(3, 0, [0.0], 0), item(5, 0, [0.0], 0)], 6) == (2.0, 3)
    scalars = scalar_metrics({"producer/approx_kl": 0.2, "consumer/approx_kl": 0.4, "x": 1})
    assert scalars["learner/x"] == 1.0
    np.testing.assert_allclose(scalars["learner/approx_kl"], 0.3)


def test_progress_line_shows_rate_eta_and_episode_numbers():
    line = progress_line(
        {
            "status": "training",
            "env_steps": 5000,
            "total_env_steps": 15000,
            "runtime/steps_per_s": 1000.0,
            "episode/return": 0.5,
            "episode/cost": 12.0,
            "episode/n_overloaded": 3.0,
            "runtime/policy_lag": 1.5,
        },
        restarts=1,
    )
    for text in ("5,000/15,000", "1,000 steps/s", "return 0.500", "cost 12", "lag 1.5"):
        assert text in line
    assert "violations 3" in line and "actor restarts 1" in line and "ETA 00:10" in line


def test_cluster_address_must_be_host_and_port():
    assert parse_address("10.0.0.1:6379") == ("10.0.0.1", 6379)
    for bad in ("10.0.0.1", ":6379", "head:port", "head:70000"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_address(bad)


def test_unreachable_head_fails_fast_with_its_address():
    with socket.socket() as probe:  # a port nothing listens on: bind, then close
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionError, match=f"no Ray head reachable at 127.0.0.1:{port}"):
        check_head_reachable(f"127.0.0.1:{port}", timeout_s=2.0)


def test_token_auth_is_used_when_a_token_exists_and_the_mode_is_unset(tmp_path):
    (tmp_path / ".ray").mkdir()
    environ = {}
    assert not use_ray_token_auth_if_available(environ, home=str(tmp_path))
    assert "RAY_AUTH_MODE" not in environ
    (tmp_path / ".ray" / "auth_token").write_text("secret")
    assert use_ray_token_auth_if_available(environ, home=str(tmp_path))
    assert environ["RAY_AUTH_MODE"] == "token"
    explicit = {"RAY_AUTH_MODE": "disabled"}
    assert not use_ray_token_auth_if_available(explicit, home=str(tmp_path))
    assert explicit == {"RAY_AUTH_MODE": "disabled"}


def test_episode_window_accepts_items_before_any_episode_has_finished():
    window = EpisodeWindow(np.array([0]), ("producer",), window=2)
    window.add([item(0, 0, [0.0], 0.0)])  # the first update of a run: nothing finished yet
    assert window.means() == {} and window.total_episodes == 0
    window.add([item(1, 1, [3.0], 1.0), item(1, 2, [6.0], 2.0)])
    window.add([item(2, 2, [2.0], 0.0)])  # the window keeps the newest 2 episodes
    np.testing.assert_allclose(window.means()["episode/return"], 1.0)
    assert window.total_episodes == 5
