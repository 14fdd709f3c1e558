"""Primary response within unit limits, frequency protection for the rest, every MW priced.

Random-action episodes (ieee14, briefly ieee118) check that online units stay inside their
[Pmin, Pmax], that no step has a negative cost, and that supply and demand both balance.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.powerflow.grid import generation_cost
from envs.sim import dispatch as dsp
from envs.sim.transition import slack_energy_cost, transition

TOL_MW = 0.05


def _env(case):
    config = default_env_config()
    config.case = case
    config.scenario = "normal"
    config.horizon = 10_000  # transition() never resets; keep episodes open
    return make_env(config)


@pytest.fixture(scope="module")
def ieee14():
    return _env("ieee14")


def test_primary_response_shares_by_pmax_and_stops_at_limits():
    pg = jnp.array([50.0, 50.0, 50.0, 30.0])
    weight = jnp.array([100.0, 100.0, 200.0, 0.0])  # the last unit is not in primary control
    lo = jnp.zeros(4)
    hi = jnp.array([60.0, 100.0, 200.0, 100.0])
    new, left = dsp.primary_response(pg, jnp.float32(100.0), weight, lo, hi)
    # unit 0 hits 60 (+10); the other 90 MW split 1:2 by Pmax between units 1 and 2
    np.testing.assert_allclose(np.asarray(new), [60.0, 80.0, 110.0, 30.0], atol=1e-3)
    assert abs(float(left)) < 1e-3
    new, left = dsp.primary_response(pg, jnp.float32(-500.0), weight, lo, hi)
    np.testing.assert_allclose(np.asarray(new), [0.0, 0.0, 0.0, 30.0], atol=1e-3)
    np.testing.assert_allclose(float(left), -350.0, atol=1e-3)  # 150 MW was all they had


def test_primary_response_of_many_units_matches_the_kink_walk_in_a_batch(monkeypatch):
    # From SELECTIVE_KINK_WALK_UNITS units on, only the grids where a unit reaches a limit
    # walk the kinks; the others take the common droop level directly. Both must agree with
    # the walk for every grid of a batch that mixes small and saturating residuals.
    units = dsp.SELECTIVE_KINK_WALK_UNITS + 4
    rng = np.random.default_rng(0)
    lo = jnp.asarray(rng.uniform(0.0, 20.0, units), jnp.float32)
    hi = lo + jnp.asarray(rng.uniform(10.0, 100.0, units), jnp.float32)
    pg = lo + 0.5 * (hi - lo)
    weight = jnp.where(jnp.arange(units) % 5 == 0, 0.0, hi)  # some units outside droop
    residuals = jnp.asarray([0.0, 3.0, -4.0, 400.0, -300.0, 5_000.0], jnp.float32)

    respond = jax.vmap(lambda r: dsp.primary_response(pg, r, weight, lo, hi))
    moved, left = respond(residuals)
    # The reference: every grid walks the kinks (the path below the unit threshold).
    monkeypatch.setattr(dsp, "SELECTIVE_KINK_WALK_UNITS", units + 1)
    walked, _ = respond(residuals)
    np.testing.assert_allclose(np.asarray(moved), np.asarray(walked), atol=1e-3)
    supplied = np.asarray(jnp.sum(moved - pg[None, :], axis=1) + left)
    np.testing.assert_allclose(supplied, np.asarray(residuals), atol=1e-2)
    assert (np.asarray(moved) <= np.asarray(hi)[None] + 1e-4).all()
    assert (np.asarray(moved) >= np.asarray(lo)[None] - 1e-4).all()
    assert float(left[-1]) > 0  # 5 GW is beyond every unit's headroom


def test_kink_walk_moves_the_covered_power_with_one_droop_level_on_random_fleets():
    # The defining properties of the droop response, on random fleets and residuals (edges
    # included: exactly all headroom, exactly all foot room, zero): it moves the covered MW,
    # stays in the limits, and every unit strictly inside its band moved by one common
    # lam * weight.
    rng = np.random.default_rng(3)
    grids, units = 400, 7
    hi = rng.uniform(10.0, 300.0, (grids, units)).astype(np.float32)
    lo = (hi * rng.uniform(0.0, 0.5, (grids, units))).astype(np.float32)
    pg = rng.uniform(lo, hi).astype(np.float32)
    weight = np.where(rng.uniform(size=(grids, units)) < 0.8, hi, 0.0).astype(np.float32)
    up = np.where(weight > 0, hi - pg, 0.0).sum(1)
    down = np.where(weight > 0, lo - pg, 0.0).sum(1)
    residual = (rng.uniform(-1.3, 1.3, grids) * up).astype(np.float32)
    residual[0::9], residual[1::9], residual[2::9] = up[0::9], down[1::9], 0.0

    new, left = jax.vmap(dsp.primary_response)(pg, residual, weight, lo, hi)
    new, left = np.asarray(new), np.asarray(left)
    covered = residual - left
    np.testing.assert_allclose(new.sum(1) - pg.sum(1), covered, atol=2e-3)
    assert (new <= hi + 1e-4).all() and (new >= np.minimum(lo, pg) - 1e-4).all()
    inside = (weight > 0) & (new > lo + 1e-2) & (new < hi - 1e-2)
    lam = np.where(inside, (new - pg) / np.where(weight > 0, weight, 1.0), np.nan)
    spread = np.nanmax(lam, axis=1) - np.nanmin(lam, axis=1)
    assert np.nanmax(spread) < 1e-4


def _conventional(params):
    return ~np.asarray(params.devices.is_renewable)


def test_deficit_beyond_headroom_is_shed_by_ufls_not_by_units_above_pmax(ieee14):
    _, params = ieee14
    grid, devices = params.grid, params.devices
    conv = _conventional(params)
    pg = jnp.where(conv, devices.pmax, 0.0)  # every unit flat out, renewables calm
    load = 1.5 * grid.bus_pd + jnp.where(grid.bus_pd > 0, 10.0, 0.0)
    energised = jnp.ones(grid.n_bus, bool)
    weight = jnp.where(conv, devices.pmax, 0.0)
    storage = jnp.zeros(devices.storage_bus.shape[0])
    inj = dsp.injections(energised, pg, storage, load, weight, grid, devices)
    assert (np.asarray(inj.gen) <= np.asarray(devices.pmax) + 1e-3).all()
    shunt = float(jnp.sum(grid.bus_gs))
    deficit = float(jnp.sum(load)) + shunt - float(jnp.sum(pg))
    np.testing.assert_allclose(float(inj.ufls), deficit, rtol=1e-4)
    supply = float(jnp.sum(inj.gen) + jnp.sum(inj.storage))
    np.testing.assert_allclose(supply, float(jnp.sum(inj.served)) + shunt, atol=TOL_MW)


def test_surplus_spills_renewables_before_pushing_units_below_pmin(ieee14):
    _, params = ieee14
    grid, devices = params.grid, params.devices
    conv = _conventional(params)
    renewable_mw = jnp.where(conv, 0.0, devices.pmax)
    pg = jnp.where(conv, devices.pmin, renewable_mw)
    load = 0.3 * grid.bus_pd
    weight = jnp.where(conv, devices.pmax, 0.0)
    storage = jnp.zeros(devices.storage_bus.shape[0])
    energised = jnp.ones(grid.n_bus, bool)
    inj = dsp.injections(energised, pg, storage, load, weight, grid, devices)
    gen = np.asarray(inj.gen)
    assert (gen[conv] >= np.asarray(devices.pmin)[conv] - 1e-3).all()
    assert (gen >= 0.0).all()
    shunt = float(jnp.sum(grid.bus_gs))
    surplus = float(jnp.sum(pg)) - float(jnp.sum(load)) - shunt
    assert surplus > 0.0 and float(inj.ufls) == 0.0
    np.testing.assert_allclose(float(inj.spilled), surplus, rtol=1e-4)
    np.testing.assert_allclose(float(jnp.sum(inj.gen)), float(jnp.sum(load)) + shunt, atol=TOL_MW)


def test_slack_energy_is_priced_on_the_slack_units_cost_curve(ieee14):
    _, params = ieee14
    grid = params.grid
    unit = int(np.flatnonzero(np.asarray(grid.gen_bus) == grid.slack)[0])
    gen = jnp.asarray(params.devices.pmin + 0.5 * (params.devices.pmax - params.devices.pmin))
    rate = float(slack_energy_cost(gen, jnp.float32(12.0), params))
    more = gen.at[unit].add(12.0)
    expected = float(generation_cost(grid, more)[unit] - generation_cost(grid, gen)[unit])
    assert expected > 0.0
    np.testing.assert_allclose(rate, expected, rtol=1e-5)


def _check_episode(env, params, batch, steps, seed):
    spec = env.spec(params)
    devices, grid = params.devices, params.grid
    keys = jax.random.split(jax.random.PRNGKey(seed), batch)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    step = jax.jit(jax.vmap(transition, in_axes=(0, 0, 0, None)))
    conv = _conventional(params)
    pmin, pmax = np.asarray(devices.pmin), np.asarray(devices.pmax)
    dt = params.consts.step_hours
    key = jax.random.PRNGKey(seed + 1)
    for _ in range(steps):
        key, key_a, key_s = jax.random.split(key, 3)
        shape = (batch, spec.num_agents, spec.action_dim)
        action = jax.random.uniform(key_a, shape, minval=-1.0, maxval=1.0)
        state, _, _, info = step(jax.random.split(key_s, batch), state, action, params)
        info = {k: np.asarray(v, np.float64) for k, v in info.items()}
        pg = np.asarray(state.pg)
        online = (np.asarray(state.available) > 0) & conv
        live = online & np.asarray(state.energised)[:, np.asarray(grid.gen_bus)]
        tripped = info["overfreq_mw"][:, None] > TOL_MW  # over-frequency trips cut below Pmin
        assert (np.where(live & ~tripped, pg - pmin, 0.0) >= -TOL_MW).all()
        assert (np.where(live, pg - pmax, 0.0) <= TOL_MW).all()
        assert (np.abs(np.where(online & ~live, pg, 0.0)) <= 1e-6).all()  # dead bus: 0
        assert (np.abs(np.where(conv & ~online, pg, 0.0)) <= 1e-6).all()  # offline: 0
        assert (info["cost"] >= 0.0).all() and (info["gen_cost"] >= 0.0).all()
        assert (np.abs(info["slack_mw"]) <= TOL_MW).all()  # DC: the slack only sees residue
        supply = info["gen_mw"] + info["storage_mw"] + info["slack_mw"]
        np.testing.assert_allclose(
            supply, info["served_mw"] + info["shunt_mw"] + info["losses_mw"], atol=TOL_MW
        )
        lost = (info["shed_mwh"] + info["ufls_mwh"] + info["island_unserved_mwh"]) / dt
        np.testing.assert_allclose(info["served_mw"] + lost, info["demand_mw"], atol=TOL_MW)


def test_random_episode_keeps_units_in_limits_costs_non_negative_and_balanced(ieee14):
    env, params = ieee14
    _check_episode(env, params, batch=8, steps=30, seed=3)


@pytest.mark.slow
def test_random_episode_ieee118_keeps_units_in_limits_and_balanced():
    env, params = _env("ieee118")
    _check_episode(env, params, batch=4, steps=4, seed=5)
