"""The one-step PTDF correction a distilled policy's dispatch goes through."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.default import get_config
from envs.env import make_env
from envs.opf import merit_order, ptdf_correction, step_qp
from envs.opf.controls import MYOPIC_RATING_MARGIN
from envs.opf.merit_order import merit_order_targets
from envs.sim import scenarios
from tests.batched_env import reset_to_scenario_batch


@pytest.fixture(scope="module")
def tight_grid():
    """Peak-demand states of the default preset's ieee14 with every rating at 70 %: the
    copper-plate merit order then overloads branches in some of them."""
    _, params = make_env(get_config().env)
    params = params.replace(grid=params.grid.replace(branch_rating=params.grid.branch_rating * 0.7))
    keys = scenarios.eval_keys("peak_demand", 16, seed=5)
    scenario = jnp.int32(scenarios.scenario_id("peak_demand"))
    _, state = reset_to_scenario_batch(keys, params, scenario)
    return params, state


@pytest.fixture(scope="module")
def solved(tight_grid):
    """The clearing QP's dispatch of those states (the myopic OPF's)."""
    params, state = tight_grid
    solve = jax.vmap(lambda s: step_qp.solve_myopic_opf(s, params, MYOPIC_RATING_MARGIN))
    return jax.jit(solve)(state)


@pytest.fixture(scope="module")
def correct(tight_grid):
    """The correction of a batch's proposals ``(pg, storage, state)``: one program for the tests
    below. Two passes: a move leaves each row ``RIDGE`` of its excess, and where two rows pull
    apart one pass can leave a branch just above its rating (a last resort then runs)."""
    params, _ = tight_grid
    return jax.jit(
        jax.vmap(
            lambda p, s, st: ptdf_correction.correct_dispatch(
                p, s, st, params, MYOPIC_RATING_MARGIN, passes=2
            )
        )
    )


def test_the_correction_relieves_overloads_and_keeps_balance_and_bands(tight_grid, correct):
    params, state = tight_grid
    pg = jax.jit(jax.vmap(merit_order_targets, in_axes=(0, None)))(state, params)
    storage = jnp.zeros((pg.shape[0], params.devices.storage_bus.shape[0]))
    out = correct(pg, storage, state)
    before, after = float(out.excess_before.sum()), float(out.excess_after.sum())
    assert before > 5.0  # the merit order overloads this grid
    assert after < 0.5 * before
    load = jnp.sum(state.demand, axis=1) + jnp.sum(params.grid.bus_gs)
    np.testing.assert_allclose(
        out.pg.sum(1) + out.storage.sum(1) + out.shed.sum(1), load, atol=1e-2
    )
    problem = jax.jit(
        jax.vmap(step_qp.clearing_problem, in_axes=(0, None, None)), static_argnums=2
    )(state, params, MYOPIC_RATING_MARGIN)
    n_gen = pg.shape[1]
    lo, hi = problem.lo[:, :n_gen] * step_qp.MW_SCALE, problem.hi[:, :n_gen] * step_qp.MW_SCALE
    assert bool(jnp.all((out.pg >= lo - 1e-3) & (out.pg <= hi + 1e-3)))
    # renewables keep what was proposed: spilling free energy is not a correction
    renewable = params.devices.is_renewable
    np.testing.assert_allclose(out.pg[:, renewable], pg[:, renewable], atol=1e-3)


def test_a_dispatch_the_opf_made_safe_is_left_as_it_is(tight_grid, solved, correct):
    _, state = tight_grid
    out = correct(solved.pg, solved.storage, state)
    ok = solved.converged & (jnp.sum(solved.shed, axis=1) < 1e-3)
    assert int(ok.sum()) >= 8
    np.testing.assert_allclose(out.pg[ok], solved.pg[ok], atol=0.05)
    # nothing to relieve: nothing shed (beyond the QP's own < 1e-3 MW, balanced again)
    np.testing.assert_allclose(out.shed[ok], 0.0, atol=1e-3)
    assert float(out.excess_after[ok].max()) < 0.05


def test_grids_with_branches_out_are_corrected_on_their_own_topology(tight_grid, correct):
    """Intact grids take the intact network's flows, the others the env's outage-aware ones:
    in one batch, each grid's excess is what ``dc_flow`` gives for its own topology."""
    from envs.powerflow.dc_outages import connected_buses, dc_flow

    params, state = tight_grid
    grid = params.grid
    out_of_service = jnp.arange(state.demand.shape[0]) % 2 == 1  # every other grid: one out
    in_service = state.branch_in_service.at[:, 2].set(~out_of_service)
    state = state.replace(
        branch_in_service=in_service, branch_cooldown=jnp.zeros_like(state.branch_cooldown)
    )
    pg = jax.jit(jax.vmap(merit_order_targets, in_axes=(0, None)))(state, params)
    storage = jnp.zeros((pg.shape[0], params.devices.storage_bus.shape[0]))
    out = correct(pg, storage, state)

    def excess(pg, storage, state, in_service):
        # the proposal as the correction first sees it: clipped and balanced (no move yet)
        proposal = ptdf_correction.correct_dispatch(
            pg, storage, state, params, MYOPIC_RATING_MARGIN, passes=0
        )
        energised = connected_buses(grid, in_service)
        bus = jnp.concatenate([grid.gen_bus, params.devices.storage_bus])
        x = jnp.concatenate([proposal.pg, proposal.storage])
        p_bus = jnp.zeros(grid.n_bus).at[bus].add(x) - jnp.where(energised, state.demand, 0.0)
        flow = dc_flow(grid, p_bus, in_service, energised=energised).flow_mw
        limit = (1.0 - MYOPIC_RATING_MARGIN) * grid.branch_rating
        return jnp.sum(jnp.maximum(jnp.abs(flow) - limit, 0.0))

    expected = jax.jit(jax.vmap(excess))(pg, storage, state, in_service)
    assert float(expected[out_of_service].sum()) > 1.0  # the outage matters to some grids
    np.testing.assert_allclose(out.excess_before, expected, rtol=1e-5, atol=1e-3)
    # and the outage changes what the grids with it see
    intact = jax.jit(jax.vmap(excess))(pg, storage, state, state.branch_in_service | True)
    assert float(jnp.abs(intact - expected)[out_of_service].max()) > 0.1


def test_a_move_brings_its_branches_to_their_limits_on_the_topology_the_step_meets(tight_grid):
    """One move, before its clip, solves ``S dx = -sign(f) excess`` with the sensitivities of
    the grid's own topology: in grids with a branch out, the flows it leaves on the branches it
    corrects are at their limits (with the intact network's rows, up to 12 MW off here), and
    it keeps the balance."""
    params, state = tight_grid
    out_of_service = jnp.arange(state.demand.shape[0]) % 2 == 1
    state = state.replace(
        branch_in_service=state.branch_in_service.at[:, 3].set(~out_of_service),
        branch_cooldown=jnp.zeros_like(state.branch_cooldown),
    )
    pg = jax.jit(jax.vmap(merit_order_targets, in_axes=(0, None)))(state, params)
    columns = params.grid.n_gen + params.devices.storage_bus.shape[0]
    rows = ptdf_correction.DEFAULT_ROWS

    def after_one_move(pg, state):
        net = ptdf_correction._network(state, params, MYOPIC_RATING_MARGIN)
        storage = jnp.zeros(params.devices.storage_bus.shape[0])
        start = ptdf_correction.correct_dispatch(
            pg, storage, state, params, MYOPIC_RATING_MARGIN, passes=0
        )
        x = jnp.concatenate([start.pg, start.storage, start.shed])
        flow, excess = ptdf_correction._flows(x, state, params, net)
        sub = net._replace(lo=net.lo[:columns], hi=net.hi[:columns], bus=net.bus[:columns])
        # conventional units and batteries move, renewables keep the proposal
        batteries = jnp.ones(params.devices.storage_bus.shape[0], bool)
        weight = (net.hi - net.lo)[:columns] * jnp.concatenate(
            [~params.devices.is_renewable, batteries]
        )
        moved = ptdf_correction._move(x[:columns], flow, excess, params, sub, weight, rows)
        moved_flow, _ = ptdf_correction._flows(x.at[:columns].set(moved), state, params, net)
        _, worst = jax.lax.top_k(excess, rows)
        gap = jnp.abs(moved_flow[worst]) - net.limit[worst]
        active = excess[worst] > 0.0
        gap = jnp.where(active, gap, 0.0)
        return gap, excess[worst], jnp.any(active), jnp.sum(moved - x[:columns])

    gap, excess, corrected, imbalance = jax.jit(jax.vmap(after_one_move))(pg, state)
    assert int((corrected & out_of_service).sum()) >= 2  # grids with the outage were moved
    # at the limit, but for the ridge's share of the excess (``RIDGE``)
    short = 2 * ptdf_correction.RIDGE * excess + 0.05
    np.testing.assert_array_less(np.abs(gap[out_of_service]), short[out_of_service])
    np.testing.assert_allclose(imbalance, 0.0, atol=1e-2)  # MW, float32 sums


def test_nearly_parallel_rows_ask_for_a_move_of_their_size(tight_grid):
    """Branches in series carry nearly one flow: their rows of sensitivities are nearly
    parallel while their excesses differ. The move stays of the excesses' size (the ridge);
    without the ridge it fails this bound (the exact solve asks for a move far outside the
    bands)."""
    params, state = tight_grid
    state = jax.tree.map(lambda a: a[0], state)
    grid = params.grid
    first, second = 4, 6  # any two branches: the second's row made nearly the first's
    nearly = grid.ptdf[first] + 1e-3 * jnp.sin(jnp.arange(grid.n_bus))
    params = params.replace(grid=grid.replace(ptdf=grid.ptdf.at[second].set(nearly)))
    net = ptdf_correction._network(state, params, MYOPIC_RATING_MARGIN)
    columns = grid.n_gen + params.devices.storage_bus.shape[0]
    sub = net._replace(lo=net.lo[:columns], hi=net.hi[:columns], bus=net.bus[:columns])
    x = 0.5 * (sub.lo + sub.hi)
    excess = jnp.zeros(grid.n_branch).at[first].set(10.0).at[second].set(30.0)
    flow = net.limit + excess
    weight = sub.hi - sub.lo

    moved = jax.jit(ptdf_correction._move, static_argnums=6)(
        x, flow, excess, params, sub, weight, 2
    )
    assert float(jnp.abs(moved - x).sum()) < 200.0  # MW, against the 40 MW of excess


def test_shedding_is_the_last_resort_where_the_units_cannot_relieve_a_branch(tight_grid):
    """With ratings at 40 % the units and batteries cannot bring every branch back: only then
    is demand shed, within what the env can shed, and it takes off what the units left."""
    params, state = tight_grid
    params = params.replace(
        grid=params.grid.replace(branch_rating=params.grid.branch_rating * 0.4 / 0.7)
    )
    pg = jax.jit(jax.vmap(merit_order_targets, in_axes=(0, None)))(state, params)
    storage = jnp.zeros((pg.shape[0], params.devices.storage_bus.shape[0]))

    def correct(last_resorts, resort_moves=1):
        return jax.jit(
            jax.vmap(
                lambda p, s, st: ptdf_correction.correct_dispatch(
                    p,
                    s,
                    st,
                    params,
                    MYOPIC_RATING_MARGIN,
                    last_resorts=last_resorts,
                    resort_moves=resort_moves,
                )
            )
        )(pg, storage, state)

    units_only, with_shedding = correct(("curtailment",)), correct(("curtailment", "shedding"))
    np.testing.assert_array_equal(units_only.shed, 0.0)
    shed = with_shedding.shed.sum(1)
    assert int((shed > 0.1).sum()) >= 4  # the units left overloads in several grids
    assert bool(jnp.all(with_shedding.shed <= params.devices.shed_max[None] * state.demand + 1e-3))
    assert bool(jnp.all(with_shedding.shed >= 0.0))
    load = jnp.sum(state.demand, axis=1) + jnp.sum(params.grid.bus_gs)
    served = with_shedding.pg.sum(1) + with_shedding.storage.sum(1)
    np.testing.assert_allclose(served + shed, load, atol=1e-2)
    relieved = shed > 0.1
    assert float(with_shedding.excess_after[relieved].sum()) < 0.7 * float(
        units_only.excess_after[relieved].sum()
    )
    # A shedding move clips each bus's shedding to its share; what the clip leaves over a limit
    # only a further move takes off.
    moved_again = correct(("curtailment", "shedding"), resort_moves=3)
    assert bool(jnp.all(moved_again.shed <= params.devices.shed_max[None] * state.demand + 1e-3))
    assert bool(jnp.all(moved_again.excess_after <= with_shedding.excess_after + 1e-2))
    assert float(moved_again.excess_after.sum()) < 0.8 * float(with_shedding.excess_after.sum())


def _clear_offers(params, state, offsets, passes=1):
    clear = jax.vmap(
        lambda o, s: ptdf_correction.clear_offers(o, s, params, MYOPIC_RATING_MARGIN, passes=passes)
    )
    return jax.jit(clear)(offsets, state)


def test_offers_clear_on_a_copper_plate_at_one_price_and_a_unit_bidding_up_runs_less(tight_grid):
    params, state = tight_grid
    n_gen, n_storage = params.grid.n_gen, params.devices.storage_bus.shape[0]
    zero = jnp.zeros((state.pg.shape[0], n_gen + n_storage))
    out = _clear_offers(params, state, zero, passes=0)  # the copper plate, no correction
    load = jnp.sum(state.demand, axis=1) + jnp.sum(params.grid.bus_gs)
    np.testing.assert_allclose(out.pg.sum(1) + out.storage.sum(1), load, atol=1e-2)
    # the optimality of a copper-plate clearing: units strictly inside their band run at one
    # marginal cost (the system price), units at their top cost no more, at their bottom no less
    problem = jax.jit(
        jax.vmap(step_qp.clearing_problem, in_axes=(0, None, None)), static_argnums=2
    )(state, params, MYOPIC_RATING_MARGIN)
    lo, hi = problem.lo[:, :n_gen] * step_qp.MW_SCALE, problem.hi[:, :n_gen] * step_qp.MW_SCALE
    c2, c1 = merit_order.marginal_cost_coefficients(params.grid)
    conventional = ~params.devices.is_renewable[None, :] & (hi - lo > 0.1)
    marginal = c1[None, :] + 2.0 * c2[None, :] * out.pg
    inside = (out.pg > lo + 0.1) & (out.pg < hi - 0.1) & conventional
    priced = jnp.sum(inside, axis=1) >= 1
    assert int(priced.sum()) >= 8
    price = jnp.nanmean(jnp.where(inside, marginal, jnp.nan), axis=1, keepdims=True)
    tol = 0.05  # $/MWh
    at_top = conventional & (out.pg >= hi - 0.1) & priced[:, None]
    at_bottom = conventional & (out.pg <= lo + 0.1) & priced[:, None]
    assert bool(jnp.all(jnp.where(inside, jnp.abs(marginal - price) < tol, True)))
    assert bool(jnp.all(jnp.where(at_top, marginal <= price + tol, True)))
    assert bool(jnp.all(jnp.where(at_bottom, marginal >= price - tol, True)))
    # the cheapest unit with room bids its offer up by 50 $/MWh: it runs less, no one else less
    unit = int(jnp.argmin(jnp.where(params.devices.is_renewable, jnp.inf, c1)))
    dearer = _clear_offers(params, state, zero.at[:, unit].set(50.0), passes=0)
    assert bool(jnp.all(dearer.pg[:, unit] <= out.pg[:, unit] + 1e-3))
    assert float(jnp.sum(out.pg[:, unit] - dearer.pg[:, unit])) > 1.0
    others = jnp.arange(n_gen) != unit
    assert bool(jnp.all(dearer.pg[:, others] >= out.pg[:, others] - 1e-3))


def test_cleared_offers_are_the_clearing_qps_dispatch_where_no_branch_binds(tight_grid, solved):
    params, state = tight_grid
    n_gen, n_storage = params.grid.n_gen, params.devices.storage_bus.shape[0]
    out = _clear_offers(params, state, jnp.zeros((state.pg.shape[0], n_gen + n_storage)))
    problem = jax.jit(
        jax.vmap(step_qp.clearing_problem, in_axes=(0, None, None)), static_argnums=2
    )(state, params, MYOPIC_RATING_MARGIN)
    x = jnp.concatenate([solved.pg, solved.storage, solved.shed], axis=1) / step_qp.MW_SCALE
    loading = jnp.abs(jax.vmap(step_qp.branch_flows)(problem, x)) / problem.limit
    free = solved.converged & (jnp.max(loading, axis=1) < 0.97)
    assert int(free.sum()) >= 3
    np.testing.assert_allclose(out.pg[free], solved.pg[free], atol=0.5)
    np.testing.assert_allclose(out.storage[free], solved.storage[free], atol=0.5)
    # where a branch binds, the correction leaves the copper plate's overloads mostly relieved
    assert float(out.excess_after.sum()) < 0.5 * float(out.excess_before.sum())


def test_a_residuals_units_move_only_where_the_copper_plate_overloads_a_branch(tight_grid):
    """A residual student's shift: its units' part only where the copper plate's dispatch
    leaves a branch above its limit, its batteries' part in every grid."""
    params, state = tight_grid
    n_gen, n_storage = params.grid.n_gen, params.devices.storage_bus.shape[0]
    batch = state.pg.shape[0]
    zero = jnp.zeros((batch, n_gen + n_storage))

    @jax.jit
    def clear(shift):  # one program for the three shifts below
        return jax.vmap(
            lambda s, sh: ptdf_correction.clear_offers(
                jnp.zeros(n_gen + n_storage), s, params, MYOPIC_RATING_MARGIN, passes=0, shift=sh
            )
        )(state, shift)

    plain = clear(zero)
    congested = plain.excess_before > 0.0
    assert 0 < int(congested.sum()) < batch  # both kinds of grid in the batch
    conventional = ~params.devices.is_renewable
    units = jnp.where(conventional, jnp.where(jnp.arange(n_gen) % 2 == 0, 10.0, -10.0), 0.0)
    moved = clear(zero.at[:, :n_gen].set(units))
    np.testing.assert_allclose(moved.pg[~congested], plain.pg[~congested], atol=1e-3)
    assert float(jnp.abs(moved.pg[congested] - plain.pg[congested]).sum(1).min()) > 1.0
    # a battery's part moves it in every grid (here: charging 2 MW more)
    charged = clear(zero.at[:, n_gen:].set(-2.0))
    np.testing.assert_allclose(charged.storage, plain.storage - 2.0, atol=1e-3)


def test_unknown_last_resorts_and_no_resort_moves_are_refused(tight_grid):
    params, state = tight_grid
    one = jax.tree.map(lambda a: a[0], state)
    storage = jnp.zeros(params.devices.storage_bus.shape[0])
    with pytest.raises(ValueError, match=r"unknown last resorts \['rationing'\]"):
        ptdf_correction.correct_dispatch(
            one.pg, storage, one, params, MYOPIC_RATING_MARGIN, last_resorts=("rationing",)
        )
    with pytest.raises(ValueError, match="resort_moves must be >= 1, got 0"):
        ptdf_correction.clear_offers(
            jnp.zeros(one.pg.shape[0] + storage.shape[0]),
            one,
            params,
            MYOPIC_RATING_MARGIN,
            resort_moves=0,
        )
