"""Grid2Op-style chronics: CSV reading, column mapping, and an env driven by them."""

import bz2

import jax
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.powerflow.case import load_case
from envs.powerflow.grid import build_grid
from envs.sim.chronics import chronics_for_grid, load_chronics

STEPS = 6


def _write(path, names, values, compress=False):
    lines = [";".join(names)] + [";".join(f"{v:.3f}" for v in row) for row in values]
    text = "\n".join(lines) + "\n"
    if compress:
        path.with_name(path.name + ".bz2").write_bytes(bz2.compress(text.encode()))
    else:
        path.write_text(text)


@pytest.fixture
def chronics_dir(tmp_path):
    grid = build_grid(load_case("ieee14"))
    n_load = int((np.asarray(grid.bus_pd) > 0).sum())
    rng = np.random.default_rng(0)
    load = rng.uniform(5.0, 50.0, (STEPS, n_load))
    prod = rng.uniform(0.0, 80.0, (STEPS, grid.n_gen))
    _write(tmp_path / "load_p.csv", [f"load_{i}" for i in range(n_load)], load)
    _write(tmp_path / "prod_p.csv", [f"gen_{i}" for i in range(grid.n_gen)], prod, True)
    return tmp_path, grid, load, prod


def test_columns_map_to_load_buses_and_generators_in_order(chronics_dir):
    directory, grid, load, prod = chronics_dir
    chronics = load_chronics(directory)
    assert chronics.load_names[0] == "load_0" and chronics.prod_p.shape == (STEPS, grid.n_gen)
    per_bus, per_gen = chronics_for_grid(chronics, grid)
    load_buses = np.flatnonzero(np.asarray(grid.bus_pd) > 0)
    np.testing.assert_allclose(per_bus[:, load_buses], load, atol=1e-3)
    assert (per_bus[:, np.asarray(grid.bus_pd) <= 0] == 0).all()
    np.testing.assert_allclose(per_gen, prod, atol=1e-3)


def test_bad_chronics_are_clear_errors(chronics_dir, tmp_path_factory):
    _, grid, load, _ = chronics_dir
    with pytest.raises(FileNotFoundError, match="prod_p"):
        empty = tmp_path_factory.mktemp("only_load")
        _write(empty / "load_p.csv", ["a"], load[:, :1])
        load_chronics(empty)
    short = tmp_path_factory.mktemp("short")
    _write(short / "load_p.csv", ["a", "b"], load[:, :2])
    _write(short / "prod_p.csv", ["g"], load[:, :1])
    with pytest.raises(ValueError, match="load buses"):
        chronics_for_grid(load_chronics(short), grid)


def test_env_demand_follows_the_chronics_row(chronics_dir):
    directory, grid, load, prod = chronics_dir
    config = default_env_config()
    config.chronics_dir = str(directory)
    config.load_noise_std = 0.0
    config.scenario = "normal"
    env, params = make_env(config)
    _, state = jax.jit(env.reset)(jax.random.PRNGKey(0), params)
    row = int(state.episode.start_step) % STEPS
    expected = np.zeros(grid.n_bus)
    expected[np.asarray(grid.bus_pd) > 0] = load[row] * float(state.episode.load_scale)
    np.testing.assert_allclose(np.asarray(state.demand), expected, rtol=1e-4, atol=1e-3)
    renewable = np.asarray(params.devices.is_renewable)
    np.testing.assert_allclose(
        np.asarray(state.available)[renewable], prod[row][renewable], rtol=1e-4, atol=1e-3
    )
