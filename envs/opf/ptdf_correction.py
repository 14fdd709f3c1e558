"""A dispatch proposed without an OPF, made to respect the network in one linear correction.

A policy that proposes unit and battery outputs directly (a distilled policy: one network
pass, no QP) needs a safety layer that is not itself an optimisation. This one moves the
proposal onto the flow limits of its most loaded branches, once::

    x    = clip(proposal, lo, hi), its imbalance spread over the conventional units by their
           room in the needed direction (as the env's AGC spreads it), what they cannot
           take then over the batteries too
    f    = the DC flows of x on the topology the step meets;  excess_l = max(|f_l| - limit_l, 0)
    K    = the ``rows`` branches with the largest excess (static, so it jits and vmaps)
    dx   = argmin  sum_v dx_v^2 / w_v   s.t.  sum_v dx_v = 0,
                                            S_k dx = -sign(f_k) excess_k  (k in K, excess > 0)
         = W A' (A W A' + R)^-1 b,  R a ridge on the branches' rows (``RIDGE``)
    out  = clip(x + dx, lo, hi), rebalanced as above

``lo``, ``hi`` and the limits (ratings less the margin) are the clearing QP's
(``envs.opf.step_qp``). The flows are exact for the topology (``envs.powerflow.dc_outages.dc_flow``,
the env's own, on the grid's shared PTDF with a low-rank update where branches are out), and
so are the sensitivities ``S_k``: the topology's PTDF rows of the K branches
(``dc_outages.outage_ptdf_rows``, the intact rows where no branch is out), gathered at the
devices' buses. No per-grid PTDF is formed: that was most of the decision's time when the
correction built the clearing problem (benchmarks/README.md, "A distilled policy").

``w_v`` is each conventional unit's and battery's reachable band, then its room in the
direction the first solve moves it (a unit pinned at a limit barely moves); renewables keep the
proposal (moving one down spills free energy) unless a last resort below needs them. It is a
linear step, not an OPF: the clip after it can leave a branch above its limit, a branch outside
K can rise above its own, and nothing is optimised for cost. What it leaves over the limit
shows in the evaluation's overload counts.

Two last resorts follow, in the clearing QP's order of prices, only where the units' and
batteries' move leaves a branch above its full rating. One more move lets the renewables move
too (curtailment); where a branch is then still above its limit (by more than ``RESIDUAL``),
one more has each bus's sheddable demand as a variable as well (a "unit" at the bus, from 0 up
to ``shed_max`` of its demand, priced at the value of lost load in the QP). That move clips each
bus's shedding to its share, so the last resort moves again where a branch is still above its
limit: ``RESORT_MOVES`` such moves in all. With shedding on,
what the units cannot balance is shed in every grid. Without shedding, a peak the network
cannot carry overloaded branches until protection tripped them and the grid blacked out, where
the myopic OPF shed a few percent of the load (benchmarks/README.md, "A distilled policy").

Offers instead of a dispatch (``clear_offers``): a policy that bids, as the bid policy does,
can have its offers (each unit's and battery's price offset on the clearing QP's objective)
cleared on a copper plate, every variable at the one system price where the bands meet the
load (a bisection), and that dispatch corrected as above. Where no branch binds it is the
clearing QP's dispatch; the bid policy's own offers cleared this way cost within 0.01 % of
what the QP clears them to on ieee118's normal days (benchmarks/README.md, "A distilled
policy").

Why not a QP: the point of a distilled policy is a decision without one (a K x K solve per
grid instead of the clearing QP's 16-30 interior-point iterations).
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.batching import compute_where
from envs.opf import step_qp
from envs.opf.controls import dispatch_controls
from envs.powerflow.dc_outages import dc_flow, outage_ptdf_rows, solve_unpivoted
from envs.powerflow.dcpf import dc_power_flow
from envs.sim.islands import state_kept_buses
from envs.sim.protection import dispatch_topology
from envs.types import EnvParams, EnvState

# Branches corrected per pass: more than ieee14 overloads in any recorded step, a few of
# ieee118's 186 (a step rarely overloads more; a correction that frees one can load another).
DEFAULT_ROWS = 8
# What the correction may also move where the units and batteries leave a branch above its
# rating, in this order (the clearing QP's order of prices).
LAST_RESORTS = ("curtailment", "shedding")
# A last resort runs while a branch is above its limit (its rating less the margin) by more than
# this share of its rating: curtailment that brings a branch near its limit leaves no
# shedding, one that leaves it just under its rating, where the next step's rise trips it,
# does (a peak-demand blackout otherwise; benchmarks/README.md, "A distilled policy").
RESIDUAL = 0.01
# Moves with the last resort's variables (every variable, where shedding is on): a move clips
# each bus's shedding to its share of the demand, and what the clip leaves over a limit is moved
# again only by another move (benchmarks/README.md, "The correction's last resorts, moved again").
RESORT_MOVES = 3
# Added to the diagonal of A W A' (MW): a row no device can move stays solvable.
REGULARISATION = 1e-4
# Share of each branch row's own diagonal of A W A' added to it (a ridge): branches in series
# carry nearly one flow, so their rows are nearly parallel while their excesses differ, and the
# exact solve then asks for a move far outside the bands. On an ieee118 grid with a branch
# out, the clip and rebalance of such a move left 684 MW above the limits where there had been
# 357, and protection tripped nine branches (benchmarks/README.md, "Sensitivities on the
# topology, and a ridge"). A ridge of 1 % leaves a row 1 % of its excess short; the next pass
# takes it.
RIDGE = 0.01
# Halvings of the system price's bracket in the copper-plate clearing of offers: the bracket
# spans about 1 in scaled units, so 24 reach float32's resolution (the imbalance left is
# spread by the rebalance). Why not ``merit_order.economic_dispatch``, the same clearing done
# exactly by its kink walk: that evaluates all 2V + 1 kinks at once, and on ieee118's 58 offers
# the copper plate took 5.5 µs per grid that way against 1.3 µs bisecting (batch 1,024),
# in a decision whose speed is the point (benchmarks/README.md, "A residual student").
COPPER_PLATE_HALVINGS = 24


class Corrected(NamedTuple):
    pg: jax.Array  # [G] MW
    storage: jax.Array  # [S] MW (+ discharge)
    shed: jax.Array  # [N] MW of demand shed
    excess_before: jax.Array  # [] MW, sum over branches of the flow above its limit
    excess_after: jax.Array  # [] MW


class _Network(NamedTuple):
    """What the correction reads of one grid's step, x = [pg (G), battery (S), shed (N)] in MW
    (shedding at a bus acts on the flows and the balance as a unit there would)."""

    lo: jax.Array  # [V]
    hi: jax.Array  # [V]
    load: jax.Array  # [] MW the dispatch must meet (energised demand and shunts)
    limit: jax.Array  # [L] MW, the ratings less the margin
    rating: jax.Array  # [L] MW
    bus: jax.Array  # [V] int32 bus of each variable
    in_service: jax.Array  # [L] bool
    energised: jax.Array  # [N] bool


def _network(state, params, rating_margin) -> _Network:
    grid, devices = params.grid, params.devices
    in_service = dispatch_topology(state.branch_in_service, state.branch_cooldown)
    # Most grids of a batch meet the intact topology: only the others sweep for islands.
    intact = jnp.all(in_service)
    kept = lambda state, in_service: state_kept_buses(state, params, in_service)  # noqa: E731
    energised = compute_where(kept, ~intact, grid.bus_energised0, state, in_service)
    # the clearing QP's bands, shedding up to what the env can shed (``shed_max``)
    lo, hi = step_qp.device_bounds(state, params, energised)
    n_dispatch = grid.n_gen + devices.storage_bus.shape[0]
    sheddable = step_qp.sheddable(state, params, energised)
    bus = jnp.arange(grid.n_bus)
    return _Network(
        # the QP's interior-point floor (``min_band``) is not a device's: no shedding at a bus
        # without load
        lo=jnp.concatenate([lo[:n_dispatch], jnp.zeros_like(sheddable)]),
        hi=jnp.concatenate([hi[:n_dispatch], sheddable]),
        load=jnp.sum(jnp.where(energised, state.demand + grid.bus_gs, 0.0)),
        limit=(1.0 - rating_margin) * grid.branch_rating,
        rating=grid.branch_rating,
        bus=jnp.concatenate([grid.gen_bus, devices.storage_bus, bus]).astype(jnp.int32),
        in_service=in_service,
        energised=energised,
    )


def _balanced(x, net: _Network, movable):
    """``x`` with its imbalance against the load spread over the movable variables in
    proportion to the room each has in the needed direction (what the env's AGC would do)."""
    shortfall = net.load - jnp.sum(x)
    room = jnp.where(shortfall > 0, net.hi - x, x - net.lo) * movable
    share = room / jnp.maximum(jnp.sum(room), 1e-9)
    return jnp.clip(x + shortfall * share, net.lo, net.hi)


def _flows(x, state, params, net: _Network):
    """[L] MW of the dispatch on the topology the step meets (the env's DC flow)."""
    injected = jnp.zeros(params.grid.n_bus, x.dtype).at[net.bus].add(x)
    p_bus = injected - jnp.where(net.energised, state.demand, 0.0)
    # The intact network's flows (one PTDF product) where no branch is out; the env's
    # outage-aware flow, with its low-rank tiers, only for the grids with outages.
    flow = compute_where(
        _outage_flows,
        ~jnp.all(net.in_service),
        dc_power_flow(params.grid, p_bus).flow_mw,
        params.grid,
        p_bus,
        net.in_service,
        net.energised,
    )
    return flow, jnp.maximum(jnp.abs(flow) - net.limit, 0.0)


def _outage_flows(grid, p_bus, in_service, energised):
    return dc_flow(grid, p_bus, in_service, energised=energised).flow_mw


def _move(x, flow, excess, params, net: _Network, weight, rows: int):
    _, worst = jax.lax.top_k(excess, rows)
    active = excess[worst] > 0.0
    # MW per MW on the topology the step meets: with the intact network's rows instead, two
    # passes left ieee118 grids with two branches out 50-120 MW above their limits, and the
    # step's overloads followed (benchmarks/README.md, "Sensitivities on the topology, and a
    # ridge").
    ptdf_rows = outage_ptdf_rows(params.grid, worst, net.in_service, net.energised)
    sensitivity = ptdf_rows[:, net.bus]  # [K, V]
    keep = jnp.concatenate([jnp.ones(1, bool), active])
    a = jnp.concatenate([jnp.ones((1, x.shape[0]), x.dtype), sensitivity]) * keep[:, None]
    b = jnp.concatenate([jnp.zeros(1, x.dtype), -jnp.sign(flow[worst]) * excess[worst]]) * keep
    branch_row = jnp.arange(keep.shape[0]) > 0  # row 0 is the balance, kept exact

    def least_move(w):
        system = (a * w[None, :]) @ a.T
        ridge = REGULARISATION + RIDGE * jnp.diag(system) * branch_row
        # A W A' + the regularisation is symmetric positive definite: no pivoting needed.
        y, _ = solve_unpivoted(system + jnp.diag(jnp.where(keep, ridge, 1.0)), b)
        return w * (a.T @ y)

    # The band width says how far a device can move, not in which direction: a unit at its
    # maximum cannot help a branch that needs it up. Solve once for the directions, then again
    # with each device weighted by its room in its direction.
    first = least_move(weight)
    room = jnp.where(first > 0.0, net.hi - x, x - net.lo)
    return x + least_move(jnp.maximum(room, 0.0) * (weight > 0.0))


def _rebalanced(x, net: _Network, balances):
    """``x`` balanced over each mask of ``balances`` in turn (``_balanced``)."""
    for mask in balances:
        x = _balanced(x, net, mask)
    return x


def _stage(x, flow, excess, state, params, net: _Network, weight, balances, rows, columns):
    """``(x, flow, excess)`` after one move of the first ``columns`` variables (weights
    ``weight``), the clip to the bands, the rebalance and the flows it leaves; one grid."""
    sub = net._replace(lo=net.lo[:columns], hi=net.hi[:columns], bus=net.bus[:columns])
    moved = _move(x[:columns], flow, excess, params, sub, weight[:columns], rows)
    x = _rebalanced(jnp.clip(x.at[:columns].set(moved), net.lo, net.hi), net, balances)
    return (x, *_flows(x, state, params, net))


def correct_dispatch(
    pg,
    storage,
    state: EnvState,
    params: EnvParams,
    rating_margin: float,
    rows: int = DEFAULT_ROWS,
    passes: int = 1,
    last_resorts: tuple[str, ...] = LAST_RESORTS,
    resort_moves: int = RESORT_MOVES,
) -> Corrected:
    """The proposal ``pg [G]``, ``storage [S]`` MW after the correction (module doc); one grid.
    ``last_resorts``: which of ``LAST_RESORTS`` run after the units' passes, in that order;
    ``resort_moves``: moves with the last one's variables (``RESORT_MOVES``)."""
    _check_resorts(last_resorts, resort_moves)
    net = _network(state, params, rating_margin)
    x = jnp.concatenate([pg, storage, jnp.zeros(params.grid.n_bus, pg.dtype)])
    return _corrected(x, net, state, params, rows, passes, last_resorts, resort_moves)


def clear_offers(
    price_offset,
    state: EnvState,
    params: EnvParams,
    rating_margin: float,
    rows: int = DEFAULT_ROWS,
    passes: int = 1,
    last_resorts: tuple[str, ...] = LAST_RESORTS,
    shift=None,
    resort_moves: int = RESORT_MOVES,
) -> Corrected:
    """Offers ``price_offset [G + S]`` $/MWh (what a bid policy bids) cleared without the QP:
    the copper-plate clearing of the offers (``copper_plate``), moved by ``shift [G + S]`` MW
    where given (a residual student's proposal; ``_corrected`` says where), then the
    correction onto the branch limits (module doc); one grid."""
    _check_resorts(last_resorts, resort_moves)
    net = _network(state, params, rating_margin)
    x = copper_plate(price_offset, net, params)
    return _corrected(x, net, state, params, rows, passes, last_resorts, resort_moves, shift)


def copper_plate_dispatch(price_offset, state: EnvState, params: EnvParams):
    """``(pg [G], storage [S])`` MW: the copper-plate clearing of the offers alone, with no
    correction (what a residual student's proposal is measured from); one grid."""
    x = copper_plate(price_offset, _network(state, params, 0.0), params)
    n_gen = params.grid.n_gen
    return x[:n_gen], x[n_gen : n_gen + params.devices.storage_bus.shape[0]]


def copper_plate(price_offset, net: _Network, params: EnvParams) -> jax.Array:
    """``x [G + S + N]`` MW: the units' and batteries' offers (the clearing QP's objective
    with ``price_offset``) cleared against the load with no network and no shedding, every
    variable at one system price found by bisection."""
    n = params.grid.n_gen + params.devices.storage_bus.shape[0]
    curvature, linear = step_qp.objective_terms(params, net.lo.dtype, price_offset)
    curvature, linear = curvature[:n], linear[:n]
    lo, hi = net.lo[:n] / step_qp.MW_SCALE, net.hi[:n] / step_qp.MW_SCALE
    load = net.load / step_qp.MW_SCALE
    slope = 1.0 / curvature

    def output(price):
        return jnp.clip((price - linear) * slope, lo, hi)

    def halve(_, bracket):
        low, high = bracket
        middle = 0.5 * (low + high)
        short = jnp.sum(output(middle)) < load
        return jnp.where(short, middle, low), jnp.where(short, high, middle)

    bracket = (jnp.min(linear + curvature * lo), jnp.max(linear + curvature * hi))
    low, high = jax.lax.fori_loop(0, COPPER_PLATE_HALVINGS, halve, bracket)
    x = output(0.5 * (low + high)) * step_qp.MW_SCALE
    return jnp.concatenate([x, jnp.zeros(net.lo.shape[0] - n, x.dtype)])


def _check_resorts(last_resorts, resort_moves):
    unknown = set(last_resorts) - set(LAST_RESORTS)
    if unknown:
        raise ValueError(f"unknown last resorts {sorted(unknown)}; known: {LAST_RESORTS}")
    if int(resort_moves) < 1:
        raise ValueError(f"resort_moves must be >= 1, got {resort_moves}")


def _shifted(x, shift, net: _Network, state, params, balances):
    """``(x, flow, excess)`` with ``shift`` added to its first variables, clipped, rebalanced."""
    x = _rebalanced(jnp.clip(x.at[: shift.shape[0]].add(shift), net.lo, net.hi), net, balances)
    return (x, *_flows(x, state, params, net))


def _corrected(
    x, net: _Network, state, params, rows, passes, last_resorts, resort_moves, shift=None
) -> Corrected:
    """``x [G + S + N]`` MW of a proposal after the correction's passes and last resorts.

    ``shift [G + S]`` MW (a residual student's proposal): the batteries' part moves ``x``
    always, the units' part only where ``x`` leaves a branch above its limit. Away from
    congestion the copper plate's merit order is already the cheapest dispatch of the units,
    and a student's small errors on units pinned at a limit of their band cost at first order.
    On ieee118's held-out normal days a residual student whose units moved everywhere cost
    1.056 x the bid policy's; gated so, a fit of its own cost 0.999 x (benchmarks/README.md,
    "A residual student")."""
    conventional = ~params.devices.is_renewable
    n_gen, n_storage, n_bus = (
        params.grid.n_gen,
        params.devices.storage_bus.shape[0],
        params.grid.n_bus,
    )

    def variables(gen, battery, shed):
        return jnp.concatenate(
            [gen, jnp.full(n_storage, battery, bool), jnp.full(n_bus, shed, bool)]
        ).astype(x.dtype)

    # Conventional units and batteries move; renewables keep what was proposed (moving one
    # down spills free energy at the curtailment price) and nothing is shed, but in the last
    # resorts below.
    movable = variables(conventional, True, False)
    balancing = variables(conventional, False, False)
    weight = (net.hi - net.lo) * movable
    rows = min(int(rows), net.limit.shape[0])

    if shift is not None:
        x = x.at[n_gen : n_gen + n_storage].add(shift[n_gen:])
    x = _rebalanced(jnp.clip(x, net.lo, net.hi), net, (balancing, movable))
    flow, excess = _flows(x, state, params, net)
    if shift is not None:
        unit_shift = jnp.zeros_like(shift).at[:n_gen].set(shift[:n_gen])
        x, flow, excess = compute_where(
            partial(_shifted, balances=(balancing, movable)),
            jnp.any(excess > 0.0),
            (x, flow, excess),
            x,
            unit_shift,
            net,
            state,
            params,
        )
    before = jnp.sum(excess)
    # Under vmap each move runs only for the grids that need it (a grid with no branch above
    # its limit is not moved: its move is 0), its flows recomputed only there.
    units = n_gen + n_storage  # the units' and batteries' columns, a third of ieee118's
    carried = (x, flow, excess)
    balances = (balancing, movable)
    sheds = variables(jnp.zeros(n_gen, bool), False, True)
    # Each kind of stage is traced once, in a loop: its program is the same whatever the count
    # (each traced copy of a stage added 3-6 s to a correcting program's compile).

    def unit_pass(_, carried):
        return compute_where(
            partial(_stage, rows=rows, columns=units),
            jnp.any(carried[2] > 0.0),
            carried,
            *carried,
            state,
            params,
            net,
            weight,
            balances,
        )

    if passes:
        carried = jax.lax.fori_loop(0, int(passes), unit_pass, carried)
        x, flow, excess = carried
    if passes and last_resorts:
        # The last resorts, only where the units and batteries left a branch above its full
        # rating, each while a branch is still above its limit by more than ``RESIDUAL``; each
        # moves what the ones before it moved, and its own variables.
        overloaded = jnp.any(jnp.abs(flow) > net.rating)
        renewables = variables(params.devices.is_renewable, False, False)
        added = jnp.stack([sheds if r == "shedding" else renewables for r in last_resorts])
        stage_weights = weight[None] + (net.hi - net.lo)[None] * jnp.cumsum(added, axis=0)
        repeats = jnp.repeat(stage_weights[-1:], int(resort_moves) - 1, axis=0)
        stage_weights = jnp.concatenate([stage_weights, repeats])

        def last_resort(carried, stage_weight):
            carried = compute_where(
                partial(_stage, rows=rows, columns=x.shape[0]),
                overloaded & jnp.any(carried[2] > RESIDUAL * net.rating),
                carried,
                *carried,
                state,
                params,
                net,
                stage_weight,
                balances,
            )
            return carried, None

        carried, _ = jax.lax.scan(last_resort, carried, stage_weights)
        x, flow, excess = carried
    if passes and "shedding" in last_resorts:
        # What the units cannot balance, every grid sheds: under-supply (units at the top of
        # their ramp bands, renewables curtailed) would otherwise leave the env's frequency
        # control short; over-supply after shedding sheds less.
        x = _balanced(x, net, sheds)
        flow, excess = _flows(x, state, params, net)
    return Corrected(
        pg=x[:n_gen],
        storage=x[n_gen : n_gen + n_storage],
        shed=x[n_gen + n_storage :],
        excess_before=before,
        excess_after=jnp.sum(excess),
    )


def as_controls(corrected: Corrected, state: EnvState, params: EnvParams) -> jax.Array:
    """A corrected dispatch as the env's device controls [C]."""
    return dispatch_controls(corrected.pg, corrected.storage, corrected.shed, state, params)
