"""Network solvers behind one interface: DC (default) or AC Newton-Raphson power flow.

Both return a ``NetworkFlow``. In AC mode branch loading uses apparent power
``max(|S_from|, |S_to|)`` (signed by the from-end active flow) against the MVA rating,
reactive demand scales with active demand bus by bus (``Qd x served / Pd``; the case
power factor is kept, shed load sheds its reactive part too), PV/slack voltages are the
case setpoints, and the slack bus also covers the network losses (``losses_mw``).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.batching import compute_where
from envs.powerflow.dc_outages import dc_flow
from envs.powerflow.dcpf import energised_buses


class NetworkFlow(NamedTuple):
    flow_mw: jax.Array  # [L] signed loading quantity (DC: MW; AC: MVA with the sign of P)
    theta: jax.Array  # [N] rad
    bus_energised: jax.Array  # [N] bool
    vm: jax.Array  # [N] p.u. (1 in DC)
    slack_injection_mw: jax.Array  # [] solved net injection at the slack bus
    converged: jax.Array  # [] bool (always True in DC)


def dc_network_flow(grid, p_bus, q_bus, in_service, active=None, energised=None) -> NetworkFlow:
    """``active=False``: the caller discards this result (see ``dc_outages.dc_flow``);
    ``energised``: ``energised_buses(grid, in_service)`` when the caller has it already."""
    del q_bus
    flow = dc_flow(grid, p_bus, in_service, active, energised)
    # DC: the slack takes whatever the energised buses leave unbalanced (shunts included).
    live_p = jnp.where(flow.bus_energised, p_bus - grid.bus_gs, 0.0)
    slack_injection = p_bus[grid.slack] - jnp.sum(live_p)
    return NetworkFlow(
        flow.flow_mw,
        flow.theta,
        flow.bus_energised,
        jnp.ones_like(flow.theta),
        slack_injection,
        jnp.bool_(True),
    )


# Newton iterations every grid of a batch gets; the grids not converged by then are solved again
# from the flat start with the full budget, only they (``compute_where``), so the result is the
# full-budget solve's. Under ``vmap`` one Newton loop runs until its slowest grid is done, and a
# batch of thousands of stressed grids nearly always holds one that never converges: every grid
# then paid all 20 iterations (benchmarks/README.md, "Design choices in the step").
FIRST_NEWTON_ITERATIONS = 3
MAX_NEWTON_ITERATIONS = 20


def _ac_solve(grid, p_bus, q_bus, in_service, max_iter: int):
    from envs.powerflow.acpf import ac_power_flow

    return ac_power_flow(grid, p_bus, q_bus, grid.bus_vm_set, in_service, max_iter=max_iter)


def _ac_solve_fully(grid, p_bus, q_bus, in_service):
    return _ac_solve(grid, p_bus, q_bus, in_service, MAX_NEWTON_ITERATIONS)


def ac_network_flow(grid, p_bus, q_bus, in_service, active=None, energised=None) -> NetworkFlow:
    del active  # always solved
    first = _ac_solve(grid, p_bus, q_bus, in_service, FIRST_NEWTON_ITERATIONS)
    flow = compute_where(_ac_solve_fully, ~first.converged, first, grid, p_bus, q_bus, in_service)
    s_from = jnp.hypot(flow.p_from_mw, flow.q_from_mvar)
    s_to = jnp.hypot(flow.p_to_mw, flow.q_to_mvar)
    loading_mva = jnp.sign(flow.p_from_mw) * jnp.maximum(s_from, s_to)
    if energised is None:
        energised = energised_buses(grid, in_service)
    finite = flow.converged & jnp.all(jnp.isfinite(flow.vm))
    safe = lambda x, fallback: jnp.where(finite, jnp.nan_to_num(x), fallback)  # noqa: E731
    return NetworkFlow(
        safe(loading_mva, 0.0),
        safe(flow.va, 0.0),
        energised,
        safe(flow.vm, 1.0),
        safe(flow.p_injection_mw[grid.slack], p_bus[grid.slack]),
        finite,
    )


def reactive_demand(grid, served_mw) -> jax.Array:
    """[N] MVAr drawn by the served load at the case power factor of each bus."""
    ratio = jnp.where(grid.bus_pd > 0, grid.bus_qd / jnp.maximum(grid.bus_pd, 1e-6), 0.0)
    return ratio * served_mw


SOLVERS = {"dc": dc_network_flow, "ac": ac_network_flow}
