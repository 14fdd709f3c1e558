"""The step-floor benchmark: its parts are the env's sizes, computed as stated, reported right."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from benchmarks import harness, step_floor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def ieee14():
    env, params = harness.make_grid_env("ieee14", "dc")
    return env, params, step_floor.part_sizes(env, params)


def test_part_sizes_are_the_envs_observation_noise_and_actions(ieee14):
    env, params, sizes = ieee14
    obs, _ = jax.jit(env.reset)(jax.random.PRNGKey(0), params)
    assert sizes["observation"] == obs.agent_obs.size + obs.global_state.size
    grid = params.grid
    assert sizes["noise"] == 1 + grid.n_bus + 2 * grid.n_gen + grid.n_branch + grid.n_gen
    spec = env.spec(params)
    assert sizes["actions"] == spec.num_agents * spec.action_dim
    assert (sizes["buses"], sizes["branches"]) == (14, 20)


def test_each_part_computes_what_it_says_for_every_grid(ieee14):
    _, params, sizes = ieee14
    batch, steps = 3, 2
    loops = step_floor.floor_loops(params.grid.ptdf, sizes, batch, steps)
    assert set(loops) == {"DC flow", "observation", "random numbers"}

    loop, p_bus, _ = loops["DC flow"]
    expected = np.asarray(p_bus, np.float64)
    ptdf = np.asarray(params.grid.ptdf, np.float64)
    for _ in range(steps):
        expected = expected + 1e-9 * (expected @ ptdf.T)[:, : sizes["buses"]]
    np.testing.assert_allclose(np.asarray(loop(p_bus)), expected, rtol=1e-6)

    loop, obs, _ = loops["observation"]
    assert obs.shape == (batch, sizes["observation"])
    once = np.asarray(obs) * 0.999 + 0.001
    np.testing.assert_allclose(np.asarray(loop(obs)), once * 0.999 + 0.001, rtol=1e-6)

    loop, (key, acc), _ = loops["random numbers"]
    _, total = loop((key, acc))
    # Each grid adds the sums of its noise (uniform in [0, 1)) and actions (in [-1, 1)).
    n = steps * (sizes["noise"] + sizes["actions"])
    assert total.shape == (batch,) and np.all(np.abs(np.asarray(total)) < n)
    assert len(set(np.asarray(total).tolist())) == batch  # every grid draws its own numbers


def test_report_gives_the_floor_the_ceiling_and_what_the_target_needs():
    result = {
        "case": "ieee118",
        "batch": 64,
        "parts": [("DC flow", "x", 0.5), ("observation", "y", 1.0), ("random numbers", "z", 1.5)],
        "full_us": 30.0,
    }
    text = "\n".join(step_floor.report(result, peer_rate=1000.0))
    assert "floor (sum)        3.000 us   ceiling 333,333 steps/s" in text
    assert "33,333 steps/s, 10.0x the floor" in text
    assert "full step 33.3x, ceiling 333.3x" in text
    # 300x of 1,000 steps/s is 300,000 steps/s: 3.333 us per grid, 1.11x the 3 us floor.
    assert "target 300x needs a full step of 3.333 us per grid: 1.11x the floor" in text
    assert "Grid2Op" not in "\n".join(step_floor.report(result, peer_rate=None))


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--core=4096", "--core=4096 is not a usable core"),
        ("--cases=ieee30", "--cases: unknown ['ieee30']"),
        ("--batch=0", "--batch must be positive"),
    ],
)
def test_bad_flags_fail_before_measuring(flag, message):
    command = [sys.executable, "-m", "benchmarks.step_floor", flag, "--nogrid2op"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert message in done.stderr
    assert "per grid-step" not in done.stdout
