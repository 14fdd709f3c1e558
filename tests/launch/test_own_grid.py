"""Bring your own grid: a hand-written MATPOWER file with odd bus numbers trains end to end."""

import jax
import numpy as np
import pytest

from envs.case_setup import resolve_env_case
from envs.env import make_env
from learner.train_loop import train
from tests.envs.powerflow.test_matpower import ODD_CASE
from tests.launch.tiny import tiny_config


@pytest.fixture(scope="module")
def own_grid_config(tmp_path_factory):
    """The tiny runtime config on the 6-bus case (bus numbers 10 20 7 42 5 99), two branches
    without a rating (rateA 0: MATPOWER's "unlimited") and a wind unit named by its fuel."""
    unrated = ODD_CASE.replace("\t80\t0\t0\t0\t0\t1", "\t0\t0\t0\t0\t0\t1", 2)
    fuels = "mpc.genfuel = {'coal'; 'gas'; 'gas'; 'wind'; 'coal'};\n"
    path = tmp_path_factory.mktemp("own_grid") / "odd_buses.m"
    path.write_text(unrated + fuels)
    config = tiny_config()
    config.env.case = str(path)
    return config


def test_a_hand_written_case_is_set_up_automatically_and_trains(own_grid_config):
    config = own_grid_config
    notes = resolve_env_case(config.env)
    assert notes[0].startswith("2 of 8 in-service branches have no rating")
    assert config.env.layout == "per_node" and tuple(config.env.wind_buses) == (5,)
    env, env_params = make_env(config.env)
    spec = env.spec(env_params)
    assert env_params.grid.n_bus == 6 and spec.num_agents == int(spec.agent_mask.sum())
    assert bool(np.asarray(env_params.devices.is_wind)[3])  # the unit at bus 5
    state, history = train(env, env_params, config.learner, num_updates=3, key=jax.random.key(0))
    assert len(history) == 3
    assert all(np.isfinite(record["rollout/mean_reward"]) for record in history)
    assert all(record["skipped_updates"] == 0 for record in history)
    leaves = jax.tree_util.tree_leaves(state.params)
    assert all(bool(np.all(np.isfinite(np.asarray(leaf)))) for leaf in leaves)
