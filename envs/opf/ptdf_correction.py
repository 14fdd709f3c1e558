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
         = W A' (A W A')^-1 b
    out  = clip(x + dx, lo, hi), rebalanced as above

``lo``, ``hi`` and the limits (ratings less the margin) are the clearing QP's
(``envs.opf.step_qp``). The flows are exact for the topology (``envs.powerflow.dc_outages.dc_flow``,
the env's own, on the grid's shared PTDF with a low-rank update where branches are out);
the sensitivities ``S_k`` are the intact network's PTDF rows, gathered at the devices' buses.
Exact on an intact grid, an approximation under outages that the next pass (``passes``) reads
the exact flows of. No per-grid PTDF is formed: that was most of the decision's time when
the correction built the clearing problem (benchmarks/README.md, "A distilled policy").

``w_v`` is each conventional unit's and battery's reachable band, then its room in the
direction the first solve moves it (a unit pinned at a limit barely moves); renewables keep the
proposal (moving one down spills free energy) and shedding is never started. It is a linear
step, not an OPF: the clip after it can leave a branch above its limit, a branch outside K can
rise above its own, and nothing is optimised for cost. What it leaves over the limit shows in
the evaluation's overload counts.

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
from envs.powerflow.dc_outages import connected_buses, dc_flow, solve_unpivoted
from envs.powerflow.dcpf import dc_power_flow
from envs.sim.protection import dispatch_topology
from envs.types import EnvParams, EnvState

# Branches corrected per pass: more than ieee14 overloads in any recorded step, a few of
# ieee118's 186 (a step rarely overloads more; a correction that frees one can load another).
DEFAULT_ROWS = 8
# Added to the diagonal of A W A' (MW): a row no device can move stays solvable.
REGULARISATION = 1e-4


class Corrected(NamedTuple):
    pg: jax.Array  # [G] MW
    storage: jax.Array  # [S] MW (+ discharge)
    excess_before: jax.Array  # [] MW, sum over branches of the flow above its limit
    excess_after: jax.Array  # [] MW


class _Network(NamedTuple):
    """What the correction reads of one grid's step, x = [pg (G), battery (S)] in MW."""

    lo: jax.Array  # [V]
    hi: jax.Array  # [V]
    load: jax.Array  # [] MW the dispatch must meet (energised demand and shunts)
    limit: jax.Array  # [L] MW
    bus: jax.Array  # [V] int32 bus of each variable
    in_service: jax.Array  # [L] bool
    energised: jax.Array  # [N] bool


def _network(state, params, rating_margin) -> _Network:
    grid, devices = params.grid, params.devices
    in_service = dispatch_topology(state.branch_in_service, state.branch_cooldown)
    # Most grids of a batch meet the intact topology: only the others sweep for islands.
    intact = jnp.all(in_service)
    energised = compute_where(connected_buses, ~intact, grid.bus_energised0, grid, in_service)
    lo, hi = step_qp.device_bounds(state, params, energised)
    n_dispatch = grid.n_gen + devices.storage_bus.shape[0]
    return _Network(
        lo=lo[:n_dispatch],
        hi=hi[:n_dispatch],
        load=jnp.sum(jnp.where(energised, state.demand + grid.bus_gs, 0.0)),
        limit=(1.0 - rating_margin) * grid.branch_rating,
        bus=jnp.concatenate([grid.gen_bus, devices.storage_bus]).astype(jnp.int32),
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
    sensitivity = params.grid.ptdf[worst][:, net.bus]  # [K, V] MW per MW
    keep = jnp.concatenate([jnp.ones(1, bool), active])
    a = jnp.concatenate([jnp.ones((1, x.shape[0]), x.dtype), sensitivity]) * keep[:, None]
    b = jnp.concatenate([jnp.zeros(1, x.dtype), -jnp.sign(flow[worst]) * excess[worst]]) * keep
    regularisation = jnp.diag(jnp.where(keep, REGULARISATION, 1.0))

    def least_move(w):
        # A W A' + the regularisation is symmetric positive definite: no pivoting needed.
        y, _ = solve_unpivoted((a * w[None, :]) @ a.T + regularisation, b)
        return w * (a.T @ y)

    # The band width says how far a device can move, not in which direction: a unit at its
    # maximum cannot help a branch that needs it up. Solve once for the directions, then again
    # with each device weighted by its room in its direction.
    first = least_move(weight)
    room = jnp.where(first > 0.0, net.hi - x, x - net.lo)
    return x + least_move(jnp.maximum(room, 0.0) * (weight > 0.0))


def correct_dispatch(
    pg,
    storage,
    state: EnvState,
    params: EnvParams,
    rating_margin: float,
    rows: int = DEFAULT_ROWS,
    passes: int = 1,
) -> Corrected:
    """The proposal ``pg [G]``, ``storage [S]`` MW after the correction (module doc); one grid."""
    net = _network(state, params, rating_margin)
    conventional = ~params.devices.is_renewable
    n_storage = storage.shape[0]
    # Conventional units and batteries move; renewables keep what was proposed (moving one
    # down spills free energy at the curtailment price).
    movable = jnp.concatenate([conventional, jnp.ones(n_storage, bool)]).astype(pg.dtype)
    balancing = jnp.concatenate([conventional, jnp.zeros(n_storage, bool)]).astype(pg.dtype)
    weight = (net.hi - net.lo) * movable
    rows = min(int(rows), net.limit.shape[0])

    def rebalance(x):
        return _balanced(_balanced(x, net, balancing), net, movable)

    x = rebalance(jnp.clip(jnp.concatenate([pg, storage]), net.lo, net.hi))
    flow, excess = _flows(x, state, params, net)
    before = jnp.sum(excess)
    move = partial(_move, rows=rows)
    for _ in range(int(passes)):
        # A grid with no branch above its limit is not moved (its move is 0): under vmap only
        # the grids with an overload build and solve the move's system.
        moved = compute_where(move, jnp.any(excess > 0.0), x, x, flow, excess, params, net, weight)
        x = rebalance(jnp.clip(moved, net.lo, net.hi))
        flow, excess = _flows(x, state, params, net)
    n_gen = pg.shape[0]
    return Corrected(
        pg=x[:n_gen], storage=x[n_gen:], excess_before=before, excess_after=jnp.sum(excess)
    )


def as_controls(corrected: Corrected, state: EnvState, params: EnvParams) -> jax.Array:
    """A corrected dispatch as the env's device controls [C] (no shedding)."""
    no_shed = jnp.zeros_like(state.demand)
    return dispatch_controls(corrected.pg, corrected.storage, no_shed, state, params)
