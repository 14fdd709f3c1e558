"""The merit-order dispatch and the single-step DC-OPF in JAX against hand numbers and HiGHS."""

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import GridEnv, make_env, reset_to_scenario
from envs.opf import baselines, dc_opf, highs_reference, merit_order, step_qp
from envs.powerflow import dcpf
from envs.powerflow.connectivity import energised_buses
from envs.powerflow.grid import generation_cost
from envs.powerflow.ptdf import ptdf_matrix
from envs.sim import scenarios
from tests.batched_env import reset_to_scenario_batch

# One jitted batch solve for the tests below: a batch shape compiles once, not once per test.
_solve_batch = jax.jit(jax.vmap(step_qp.solve_myopic_opf, in_axes=(0, None)))


@pytest.fixture(scope="module")
def env_params():
    return make_env(default_env_config())[1]


def test_economic_dispatch_runs_units_at_equal_incremental_cost():
    c2, c1 = jnp.array([1.0, 1.0]), jnp.array([10.0, 20.0])
    lo, hi = jnp.zeros(2), jnp.full(2, 100.0)
    # lambda = 10 + 2 p1 = 20 + 2 p2 and p1 + p2 = 10: lambda = 25, p = (7.5, 2.5).
    p = merit_order.economic_dispatch(jnp.float32(10.0), lo, hi, c2, c1)
    np.testing.assert_allclose(p, [7.5, 2.5], atol=1e-4)
    np.testing.assert_allclose(merit_order.system_lambda(p, lo, hi, c2, c1), 25.0, atol=1e-3)
    # The cheap unit capped at 5 MW: the other covers the rest.
    p = merit_order.economic_dispatch(jnp.float32(10.0), lo, jnp.array([5.0, 100.0]), c2, c1)
    np.testing.assert_allclose(p, [5.0, 5.0], atol=1e-4)
    # More load than capacity: every unit at its maximum.
    p = merit_order.economic_dispatch(jnp.float32(500.0), lo, hi, c2, c1)
    np.testing.assert_allclose(p, [100.0, 100.0], atol=1e-4)


def test_merit_order_targets_cover_the_latest_load(env_params):
    _, state = jax.jit(reset_to_scenario)(jax.random.PRNGKey(0), env_params, 0)
    targets = merit_order.merit_order_targets(state, env_params)
    load = float(jnp.sum(state.demand) + jnp.sum(env_params.grid.bus_gs))
    assert float(jnp.sum(targets)) == pytest.approx(load, rel=1e-4)


def test_ptdf_reproduces_the_dc_power_flow(env_params):
    grid = env_params.grid
    p_bus = jax.random.normal(jax.random.PRNGKey(1), (grid.n_bus,)) * 20.0
    p_bus = p_bus.at[grid.slack].add(-jnp.sum(p_bus))
    ptdf = ptdf_matrix(grid, jnp.ones(grid.n_branch, bool), jnp.ones(grid.n_bus, bool))
    reference = dcpf.dc_power_flow(grid, p_bus).flow_mw
    shift_free = jnp.all(grid.branch_shift == 0.0)
    assert bool(shift_free)
    np.testing.assert_allclose(ptdf @ p_bus, reference, atol=1e-3)


_STATES = {}


def _states(env_params, scenario: str, n: int, steps: int):
    """``n`` states of ``scenario`` after ``steps`` steps of the myopic OPF's JAX twin (made
    once per scenario: the scan compiles the QP)."""
    if (scenario, n, steps) not in _STATES:
        _STATES[scenario, n, steps] = _advanced_states(env_params, scenario, n, steps)
    return _STATES[scenario, n, steps]


def _advanced_states(env_params, scenario: str, n: int, steps: int):
    keys = scenarios.eval_keys(scenario, n, seed=7)
    reset = reset_to_scenario_batch
    _, state = reset(keys, env_params, scenarios.scenario_id(scenario))
    return _advance(env_params, n)(state, jax.random.split(keys[0], steps))


_ADVANCE = {}


def _advance(env_params, n: int):
    """The jitted scan, shared by the scenarios (their keys are arguments): one compile."""
    if (id(env_params), n) not in _ADVANCE:
        act = baselines.myopic_opf_baseline(env_params)
        step = jax.vmap(GridEnv().step, in_axes=(0, 0, 0, None))

        @jax.jit
        def advance(state, step_keys):
            def body(state, key):
                action = act(None, state, None, None)
                return step(jax.random.split(key, n), state, action, env_params)[1], None

            return jax.lax.scan(body, state, step_keys)[0]

        _ADVANCE[(id(env_params), n)] = advance
    return _ADVANCE[(id(env_params), n)]


def test_both_myopic_references_dispatch_for_a_branch_that_recloses_this_step(env_params):
    """The HiGHS and the JAX myopic OPF solve the same problem, reclosing included: a tripped
    branch whose cooldown ends this step is in service for the dispatch, one still cooling is
    not. Branch 2 out in this peak hour makes the dispatch shed; back in, it does not."""
    peak = scenarios.scenario_id("peak_demand")
    keys = jax.random.split(jax.random.key(0), 2)
    _, state = reset_to_scenario_batch(keys, env_params, peak)
    model = highs_reference.myopic_model(env_params)
    is_renewable = np.asarray(env_params.devices.is_renewable, bool)
    solve = _solve_batch
    shed = {}
    for cooldown in (1, 5):
        out = state.replace(
            branch_in_service=state.branch_in_service.at[:, 2].set(False),
            branch_cooldown=state.branch_cooldown.at[:, 2].set(cooldown),
        )
        pg, _, highs_shed = highs_reference.myopic_highs_dispatch(
            model, is_renewable, highs_reference.HostStates.of(out)
        )
        ours = solve(out, env_params)
        np.testing.assert_allclose(np.asarray(ours.pg), pg, atol=0.2)
        np.testing.assert_allclose(np.asarray(ours.shed).sum(1), highs_shed.sum(1), atol=0.1)
        shed[cooldown] = highs_shed.sum(1)
    assert shed[1][1] < 1e-3 < 1.0 < shed[5][1]


@pytest.mark.parametrize("scenario", ["normal", "peak_demand"])
def test_myopic_opf_matches_the_highs_myopic_opf(env_params, scenario):
    """Same single-step problem (rating margin, ramps, batteries, shedding) on both solvers."""
    states = _states(env_params, scenario, 4, 6)
    solved = _solve_batch(states, env_params)
    assert bool(jnp.all(solved.converged))
    model = highs_reference.myopic_model(env_params)
    is_renewable = np.asarray(env_params.devices.is_renewable, bool)
    host = highs_reference.HostStates.of(states)
    pg, battery, shed = highs_reference.myopic_highs_dispatch(model, is_renewable, host)

    def cost(p):
        per_unit = np.asarray(generation_cost(env_params.grid, jnp.asarray(p, jnp.float32)))
        return np.sum(per_unit * ~is_renewable, axis=1)

    voll = env_params.consts.voll
    ours = cost(solved.pg) + voll * np.sum(np.asarray(solved.shed), 1)
    highs = cost(pg) + voll * np.sum(shed, 1)
    np.testing.assert_allclose(ours, highs, rtol=2e-3, atol=5.0)
    np.testing.assert_allclose(np.sum(np.asarray(solved.pg), 1), np.sum(pg, 1), atol=1.0)
    # Batteries with the same (zero) offer are interchangeable: only their total is unique.
    np.testing.assert_allclose(np.sum(np.asarray(solved.storage), 1), np.sum(battery, 1), atol=1.0)


def test_myopic_opf_keeps_every_branch_inside_its_margin(env_params):
    states = _states(env_params, "peak_demand", 4, 6)
    solved = _solve_batch(states, env_params)
    grid = env_params.grid
    for b in range(4):
        state = jax.tree.map(lambda x, b=b: x[b], states)
        injection = grid.gen_to_bus @ solved.pg[b] + solved.shed[b] - state.demand - grid.bus_gs
        injection = injection.at[env_params.devices.storage_bus].add(solved.storage[b])
        in_service = state.branch_in_service | (state.branch_cooldown == 1)
        flow = dcpf.dc_power_flow(grid, injection, in_service).flow_mw
        limit = (1.0 - baselines.MYOPIC_RATING_MARGIN) * grid.branch_rating
        assert np.all(np.abs(np.asarray(flow)) <= np.asarray(limit) + 0.5)


def test_solved_flags_an_infeasible_point():
    # min x^2 s.t. x = 1, x <= 2: the optimum is x = 1 with multipliers y = -2, z = 0.
    problem = step_qp.DenseQP(
        quad=jnp.eye(1) * 2.0,
        lin=jnp.zeros(1),
        eq=jnp.ones((1, 1)),
        eq_rhs=jnp.ones(1),
        ineq=jnp.ones((1, 1)),
        ineq_rhs=jnp.full(1, 2.0),
    )
    ok = step_qp.solved(problem, jnp.ones(1), jnp.zeros(1), jnp.full(1, -2.0))
    assert bool(ok)
    assert not bool(step_qp.solved(problem, jnp.full(1, 1.5), jnp.zeros(1), jnp.full(1, -2.0)))
    assert not bool(step_qp.solved(problem, jnp.full(1, jnp.nan), jnp.zeros(1), jnp.zeros(1)))


class _QPInputs(NamedTuple):
    """The state fields the single-step OPF reads, one grid per row."""

    pg: jax.Array  # [B, G]
    available: jax.Array  # [B, G]
    demand: jax.Array  # [B, N]
    soc: jax.Array  # [B, S]
    branch_in_service: jax.Array  # [B, L]
    branch_cooldown: jax.Array  # [B, L]


def _islanding_outage(network, bus_pd) -> np.ndarray:
    """[L] bool branches that cut off the loaded bus with the fewest branches (the slack's
    neighbours excluded), and with it anything beyond it."""
    ends = np.stack([network.branch_from, network.branch_to])
    degree = np.bincount(ends.ravel(), minlength=bus_pd.shape[0])
    beside_slack = np.unique(ends[:, (ends == network.slack).any(0)])
    candidates = np.where(bus_pd > 0.0, degree, np.iinfo(np.int32).max)
    candidates[beside_slack] = np.iinfo(np.int32).max
    bus = int(np.argmin(candidates))
    return ~(ends == bus).any(0)


def _parity_states(params):
    """Four grids of one case (the case's load at 90 %, renewables at 60 %, every unit at the
    same share of its capacity, batteries half full): as it is, the two branches with the
    a third of the way down the base-case flows (the network still connected) out, a loaded bus islanded, and 15 % more demand than all the
    capacity (shedding)."""
    grid, devices = params.grid, params.devices
    renewable = np.asarray(devices.is_renewable, bool)
    pmax = np.asarray(devices.pmax, np.float64)
    demand = 0.9 * np.asarray(grid.bus_pd, np.float64)
    available = np.where(renewable, 0.6 * pmax, pmax)
    share = (demand.sum() + float(np.sum(grid.bus_gs))) / available.sum()
    network = dc_opf.network_from_grid(grid)
    n_branch = grid.n_branch
    base_flow = np.abs(
        dcpf.dc_power_flow(grid, grid.gen_to_bus @ grid.gen_pg0 - grid.bus_pd).flow_mw
    )
    live = np.ones((4, n_branch), bool)
    order = np.argsort(-np.asarray(base_flow))
    for k in order[n_branch // 3 :]:  # a pair from the middle of the loading order
        live[1, k] = np.sum(~live[1]) >= 2
        live[1, k] |= not energised_buses(network, live[1]).all()
    live[2] = _islanding_outage(network, demand)
    batch = lambda x: np.repeat(x[None], 4, axis=0)  # noqa: E731
    demand = batch(demand)
    demand[3] *= 1.15 * available.sum() / demand[3].sum()  # beyond every unit's capacity
    return _QPInputs(
        pg=jnp.asarray(batch(share * available)),
        available=jnp.asarray(batch(available)),
        demand=jnp.asarray(demand),
        soc=jnp.asarray(batch(0.5 * np.asarray(devices.storage_emax, np.float64))),
        branch_in_service=jnp.asarray(live),
        branch_cooldown=jnp.zeros((4, n_branch), jnp.int32),
    )


def _dispatch_cost(params, pg, shed, available):
    """$/h of a dispatch on the objective both solvers minimise (without the constant term):
    conventional units' cost curves, curtailed renewable output, shed energised load."""
    grid, consts = params.grid, params.consts
    renewable = np.asarray(params.devices.is_renewable, bool)
    pg = np.asarray(pg, np.float64)
    zero = np.zeros_like(pg)
    units = np.asarray(generation_cost(grid, jnp.asarray(pg))) - np.asarray(
        generation_cost(grid, jnp.asarray(zero))
    )
    curtailed = np.where(renewable, np.asarray(available) - pg, 0.0)
    return (
        np.sum(np.where(renewable, 0.0, units), axis=-1)
        + consts.curtailment_cost * np.sum(curtailed, axis=-1)
        + consts.voll * np.sum(np.asarray(shed), axis=-1)
    )


# HiGHS sees a quadratic cost through tangent cuts and stops once the cuts' cost equals the true
# cost, which it does exactly at a tangent point. On ieee118, where many units share one flat
# cost curve (c2 = 0.01 $/MW^2h), both optima cost the same to 1e-8 relative while a few units
# sit ~0.1 MW apart: the optimum is that flat, neither solver pins it to 1e-2 MW.
HIGHS_MW_TOL = {"ieee118": 0.15}


def _float64(tree):
    """Every floating leaf in float64 (the case data is built in float32)."""
    wide = lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x  # noqa: E731
    return jax.tree.map(wide, tree)


@pytest.mark.parametrize("case", ["ieee14", "ieee30", "ieee118"])
def test_myopic_opf_algorithm_matches_highs_on_outages_islands_and_shedding(x64, case):
    """In float64 the QP reaches the HiGHS optimum: cost within 1e-4 relative and every unit's
    output within 1e-2 MW, on the same inputs (the env runs it in float32: benchmarks/dc_opf.py
    reports that accuracy)."""
    config = default_env_config()
    config.case = case
    params = _float64(make_env(config)[1])
    states = _parity_states(params)
    solve = partial(step_qp.solve_myopic_opf, max_iter=24, solver_tol=1e-9)
    ours = jax.jit(jax.vmap(solve, in_axes=(0, None)))(states, params)
    assert np.all(np.asarray(ours.converged)), np.asarray(ours.residual)
    assert np.all(np.asarray(ours.residual) < step_qp.FEASIBILITY_TOL)
    model = highs_reference.myopic_model(params)
    is_renewable = np.asarray(params.devices.is_renewable, bool)
    host = highs_reference.HostStates.of(states)
    pg, battery, shed = highs_reference.myopic_highs_dispatch(model, is_renewable, host)
    energised = energised_buses(model.network, np.asarray(states.branch_in_service))
    shed = np.where(energised, shed, 0.0)  # the JAX QP leaves load in islands out of the QP
    available = np.where(energised[:, params.grid.gen_bus], np.asarray(states.available), 0.0)
    highs_cost = _dispatch_cost(params, pg, shed, available)
    our_cost = _dispatch_cost(params, ours.pg, ours.shed, available)
    np.testing.assert_allclose(our_cost, highs_cost, rtol=1e-4)
    # Units with equal offers are interchangeable (renewables: the curtailment price; batteries:
    # none): only their totals are unique.
    conventional = ~is_renewable
    mw_tol = HIGHS_MW_TOL.get(case, 1e-2)
    np.testing.assert_allclose(
        np.asarray(ours.pg)[:, conventional], pg[:, conventional], atol=mw_tol
    )
    renewable_total = np.asarray(ours.pg)[:, is_renewable].sum(1)
    np.testing.assert_allclose(renewable_total, pg[:, is_renewable].sum(1), atol=1e-2)
    np.testing.assert_allclose(np.asarray(ours.shed).sum(1), shed.sum(1), atol=1e-2)
    np.testing.assert_allclose(np.asarray(ours.storage).sum(1), battery.sum(1), atol=1e-2)
    assert shed[3].sum() > 1.0 and shed[:2].sum() < 1e-6  # the last state needs shedding
    assert not energised[2].all() and energised[:2].all()


def test_myopic_opf_reports_non_convergence_per_grid_with_its_residual(env_params):
    states = _parity_states(env_params)
    solve = partial(step_qp.solve_myopic_opf, max_iter=1)
    short = jax.jit(jax.vmap(solve, in_axes=(0, None)))(states, env_params)
    assert not np.any(np.asarray(short.converged))
    assert np.all(np.asarray(short.residual) > step_qp.FEASIBILITY_TOL)
    fallback = jax.jit(jax.vmap(step_qp.fallback_pg, in_axes=(0, None)))(states, env_params)
    np.testing.assert_allclose(np.asarray(short.pg), np.asarray(fallback), atol=1e-5)
    np.testing.assert_allclose(np.asarray(short.storage), 0.0)


def test_screening_adds_the_branches_it_missed_and_reaches_the_full_solve(env_params):
    """With ratings halved several branches bind. With one flow row the solve overloads
    branches it did not screen (reported as not converged); with four rows and re-solves the
    missed branches are added, and the dispatch is the one with every row."""
    states = _states(env_params, "peak_demand", 4, 6)  # the peak states the tests above share
    grid = env_params.grid
    env_params = env_params.replace(grid=grid.replace(branch_rating=0.5 * grid.branch_rating))

    def objective_and_overload(state, result):
        problem = step_qp.clearing_problem(state, env_params, baselines.MYOPIC_RATING_MARGIN)
        x = jnp.concatenate([result.pg, result.storage, result.shed]) / step_qp.MW_SCALE
        value = jnp.sum(0.5 * problem.curvature * x**2 + problem.linear * x)
        overload = jnp.max(jnp.abs(step_qp.branch_flows(problem, x)) - problem.limit)
        return value, overload * step_qp.MW_SCALE

    def solve(screened, rounds):
        def one(state):
            result = step_qp.solve_myopic_opf(
                state,
                env_params,
                baselines.MYOPIC_RATING_MARGIN,
                screened=screened,
                max_rounds=rounds,
            )
            return result, *objective_and_overload(state, result)

        return jax.jit(jax.vmap(one))(states)

    full, full_value, _ = solve(None, step_qp.MAX_SCREENING_ROUNDS)
    once, _, once_overload = solve(1, 1)
    screened, value, overload = solve(4, 6)
    solved = np.asarray(full.converged) & np.asarray(screened.converged)
    assert solved.mean() > 0.5
    # One row and no re-solve leaves overloads, reported as not converged.
    assert np.any(~np.asarray(once.converged))
    assert np.all(np.asarray(once.residual)[np.asarray(once_overload) > 0.1] > 1e-3)
    assert np.max(np.asarray(overload)[solved]) < 0.1
    scale = np.maximum(1.0, np.abs(np.asarray(full_value)))
    error = np.abs(np.asarray(value) - np.asarray(full_value)) / scale
    np.testing.assert_array_less(error[solved], 1e-4)


def _pocket_state(params):
    """An ieee14 step of a cascading-failure day (recorded): branch 14 out, batteries empty,
    the evening's demand; the ratings hold only with shedding, and a plan bounded by each bus's
    whole demand shed all of buses 5 and 11."""
    demand = [0, 28.86, 123.96, 64.45, 10.12, 14.58, 0, 0, 39.53, 12.15, 4.7, 8.25, 18.33, 19.99]
    in_service = np.ones(params.grid.n_branch, bool)
    in_service[14] = False
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    return _QPInputs(
        pg=f32([[175.02, 72.9, 43.89, 2.08, 7.27]]),
        available=f32([[269.0, 140.0, 100.0, 2.08, 40.0]]),
        demand=f32([demand]),
        soc=jnp.zeros((1, params.devices.storage_bus.shape[0]), jnp.float32),
        branch_in_service=jnp.asarray(in_service[None]),
        branch_cooldown=jnp.zeros((1, params.grid.n_branch), jnp.int32),
    )


@pytest.mark.parametrize("case", ["ieee14", "ieee118"])
def test_the_clearing_sheds_what_the_env_can_shed(case):
    """The env sheds at most ``shed_max`` of a bus's demand: the plan sheds within that share,
    so what it plans is what happens. On this ieee14 step a plan that shed whole buses 5 and 11
    left half of their load to frequency control, on flows it never checked. Where no dispatch
    sheds within the share (ieee118's demand 15 % beyond every unit's capacity, with the
    network's limits), whole buses may shed: a dispatch that reads the network, not the merit
    order's fallback."""
    from envs.opf.controls import opf_controls

    config = default_env_config()
    config.case = case
    params = make_env(config)[1]
    if case == "ieee14":
        short = _pocket_state(params)
    else:  # the grid that must shed
        short = jax.tree.map(lambda x: x[3:], _parity_states(params))
    solved = jax.jit(jax.vmap(step_qp.solve_myopic_opf, in_axes=(0, None)))(short, params)
    assert bool(solved.converged[0])
    share = params.devices.shed_max * short.demand[0]
    planned = solved.shed[0]
    assert float(planned.sum()) > 10.0
    if case == "ieee14":
        assert float(jnp.max(planned - share)) < 0.01
        # and the env sheds what was planned: every shedding control within its range
        one = jax.tree.map(lambda x: x[0], (solved, short))
        control = opf_controls(*one, params)
        shed_control = control[-params.grid.n_bus :]
        executed = jnp.clip(shed_control, 0.0, 1.0) * share
        np.testing.assert_allclose(executed, planned, atol=0.01)
    else:
        assert float(jnp.max(planned - share)) > 1.0  # whole buses, where nothing else serves


def _stranded_unit_state(params):
    """ieee14 with branch 1-2 out: bus 1 holds the 269 MW unit and no load, and branch 1-5
    (87 MW) is its only way out. The unit makes 138 MW, the cheapest in a peak, and can ramp
    down only part of the way in a step, so no dispatch meets 1-5's limit: the clearing QP
    cannot converge."""
    in_service = np.ones(params.grid.n_branch, bool)
    in_service[0] = False  # 1-2
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    return _QPInputs(
        pg=f32([[138.0, 40.0, 30.0, 2.0, 7.0]]),
        available=f32([[269.0, 140.0, 100.0, 2.08, 40.0]]),
        demand=f32(1.2 * np.asarray(params.grid.bus_pd)[None]),  # an evening peak
        soc=jnp.zeros((1, params.devices.storage_bus.shape[0]), jnp.float32),
        branch_in_service=jnp.asarray(in_service[None]),
        branch_cooldown=jnp.zeros((1, params.grid.n_branch), jnp.int32),
    )


def test_the_elastic_fallback_relieves_the_branch_the_merit_order_ignores(env_params):
    """Where no dispatch meets a limit, the elastic fallback (the default) still clears on the
    network: the stranded unit comes down as far as its ramp allows (the least overload), the
    balance holds, and the grids that converge get the same dispatch as under the merit-order
    fallback, which keeps the unit up."""
    grid = env_params.grid
    assert (int(grid.branch_from[0]), int(grid.branch_to[0])) == (0, 1)  # 1-2, 0-based
    assert (int(grid.branch_from[1]), int(grid.branch_to[1])) == (0, 4)  # 1-5
    states = jax.tree_util.tree_map(
        lambda a, b: jnp.concatenate([a, b]),
        _parity_states(env_params),
        _stranded_unit_state(env_params),
    )
    assert env_params.consts.opf_fallback == "elastic"  # the default
    merit_params = env_params.replace(
        consts=dataclasses.replace(env_params.consts, opf_fallback="merit_order")
    )
    elastic = _solve_batch(states, env_params)
    merit = jax.jit(jax.vmap(step_qp.solve_myopic_opf, in_axes=(0, None)))(states, merit_params)
    converged = np.asarray(merit.converged)
    assert not converged[-1] and not np.asarray(elastic.converged)[-1]
    np.testing.assert_array_equal(np.asarray(elastic.converged), converged)
    for field in ("pg", "storage", "shed"):
        ours, theirs = np.asarray(getattr(elastic, field)), np.asarray(getattr(merit, field))
        np.testing.assert_array_equal(ours[converged], theirs[converged])
    stranded = jax.tree_util.tree_map(lambda x: x[-1], states)
    problem = step_qp.clearing_problem(stranded, env_params, baselines.MYOPIC_RATING_MARGIN)
    lowest = float(problem.lo[0]) * step_qp.MW_SCALE
    limit = float(problem.limit[1]) * step_qp.MW_SCALE
    merit_pg, elastic_pg = np.asarray(merit.pg)[-1], np.asarray(elastic.pg)[-1]
    assert merit_pg[0] > lowest + 10.0 > limit + 10.0  # the merit order keeps it up
    np.testing.assert_allclose(elastic_pg[0], lowest, atol=0.1)  # all the relief there is
    served = elastic_pg.sum() + np.asarray(elastic.storage)[-1].sum()
    served += np.asarray(elastic.shed)[-1].sum()
    np.testing.assert_allclose(served, float(np.sum(problem.load)) * step_qp.MW_SCALE, atol=0.1)
