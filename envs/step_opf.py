"""Single-step DC optimal power flow as a dense QP solved in JAX (qpax), per grid, jit/vmap-able.

What an operator's security-constrained dispatch does each interval, on the latest state
(persistence forecast of demand and availability, the current topology, the band each unit
can reach this step)::

    min   sum_g c2 p_g^2 + c1 p_g  -  curtailment price x renewable output
          + VOLL x (shed + unserved)  +  OVERLOAD_PRICE x overload
    s.t.  sum_g p_g + sum_n shed_n + unserved = energised demand + shunts
          |PTDF (C_g p - demand - shunts + shed)|_l <= (1 - margin) rating_l + overload_l
          lo_g <= p_g <= hi_g,  0 <= shed_n <= shed_max_n demand_n,  overload, unserved >= 0

The PTDF is that of the topology the step will meet (out-of-service branches removed unless
their reclosing is due, buses cut off from the slack dropped with their devices). Overload and unserved slacks keep every
instance feasible, so the interior-point solve never has to report an infeasible grid.
Batteries are left out (their value lies in time, which a single step cannot see), and so is
the phase shift of transformers (the branch flows are the PTDF part only).

Why a JAX QP and not HiGHS: this runs inside the actors' jitted rollout for every grid of the
batch at every step (the policy's action prior, ``learner.prior``), where a host call per grid
would stall the device. ``envs.opf`` (HiGHS) stays the exact reference (cost, outer
approximation of quadratic costs, storage, multi-period).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import qpax

from envs.dynamics.dispatch import reachable_band
from envs.dynamics.fastdc import connected_buses
from envs.merit_order import MIN_CURVATURE, marginal_cost_coefficients

MW_SCALE = 100.0  # variables in units of 100 MW
COST_SCALE = 1000.0  # objective in k$/h
OVERLOAD_PRICE_PER_VOLL = 2.0  # an overloaded MW costs more than shedding one
UNSERVED_PRICE_PER_VOLL = 1.5  # unlocated unserved load only where shedding cannot balance
LINEAR_CURVATURE = 1e-4  # in scaled units: keeps the QP strictly convex in every variable
MAX_ITER = 30


class StepOPF(NamedTuple):
    pg: jax.Array  # [G] MW
    shed: jax.Array  # [N] MW
    overload_mw: jax.Array  # [] MW of line overload the solve could not avoid
    unserved_mw: jax.Array  # [] MW
    converged: jax.Array  # [] bool


def ptdf_matrix(grid, in_service, energised) -> jax.Array:
    """``[L, N]`` flow on each branch per MW injected at each bus (withdrawn at the slack),
    for the branches in service and the buses connected to the slack (0 elsewhere)."""
    n = grid.n_bus
    incidence = jax.nn.one_hot(grid.branch_from, n) - jax.nn.one_hot(grid.branch_to, n)
    weighted = jnp.where(in_service, grid.branch_dc_b, 0.0)[:, None] * incidence  # [L, N]
    keep = energised & (jnp.arange(n) != grid.slack)
    both = keep[:, None] & keep[None, :]
    bus_matrix = jnp.where(both, incidence.T @ weighted, jnp.eye(n, dtype=weighted.dtype))
    reactance = jnp.where(both, jnp.linalg.inv(bus_matrix), 0.0)
    return weighted @ reactance


def _bounds(state, params, energised):
    """``(lo [G], hi [G], shed_max [N])`` MW for this step."""
    devices, grid = params.devices, params.grid
    renewable = devices.is_renewable
    online = (state.available > 0.0) & ~renewable
    lo, hi = reachable_band(state.pg, online, devices)
    hi = jnp.where(renewable, state.available, hi)
    lo = jnp.where(renewable, 0.0, lo)
    fed = energised[grid.gen_bus]
    shed_max = jnp.where(energised, devices.shed_max * state.demand, 0.0)
    return jnp.where(fed, lo, 0.0), jnp.where(fed, hi, 0.0), shed_max


def _problem(state, params, rating_margin: float):
    """``(Q, q, A, b, G, h)`` of the scaled QP over ``x = [p (G), shed (N), overload (L),
    unserved (1)]``."""
    grid, devices, consts = params.grid, params.devices, params.consts
    n_gen, n_bus, n_branch = grid.n_gen, grid.n_bus, grid.n_branch
    # A tripped branch whose cooldown ends recloses at the start of the step: dispatch for the
    # topology the flows will meet (scheduled outages are not known ahead, so not these).
    in_service = state.branch_in_service | (state.branch_cooldown == 1)
    energised = connected_buses(grid, in_service)
    lo, hi, shed_max = _bounds(state, params, energised)
    load = jnp.where(energised, state.demand + grid.bus_gs, 0.0)  # [N] MW
    c2, c1 = marginal_cost_coefficients(grid)
    renewable = devices.is_renewable
    gen_curv = jnp.where(renewable, MIN_CURVATURE, c2) * 2.0 * MW_SCALE**2 / COST_SCALE
    gen_lin = jnp.where(renewable, -consts.curtailment_cost, c1) * MW_SCALE / COST_SCALE
    voll = consts.voll * MW_SCALE / COST_SCALE
    n_var = n_gen + n_bus + n_branch + 1
    curvature = jnp.concatenate([gen_curv, jnp.full(n_var - n_gen, LINEAR_CURVATURE)])
    linear = jnp.concatenate([
        gen_lin,
        jnp.full(n_bus, voll),
        jnp.full(n_branch, OVERLOAD_PRICE_PER_VOLL * voll),
        jnp.full(1, UNSERVED_PRICE_PER_VOLL * voll),
    ])  # fmt: skip
    balance = jnp.concatenate([jnp.ones(n_gen + n_bus), jnp.zeros(n_branch), jnp.ones(1)])
    ptdf = ptdf_matrix(grid, in_service, energised)  # [L, N]
    flow_of_x = jnp.concatenate(
        [ptdf @ grid.gen_to_bus, ptdf, jnp.zeros((n_branch, n_branch + 1))], axis=1
    )
    overload = jnp.concatenate(
        [jnp.zeros((n_branch, n_gen + n_bus)), jnp.eye(n_branch), jnp.zeros((n_branch, 1))],
        axis=1,
    )
    limit = jnp.where(in_service, (1.0 - rating_margin) * grid.branch_rating, 1e6)
    base_flow = ptdf @ load  # MW the load alone drives (withdrawn: subtracted)
    eye = jnp.eye(n_var)
    upper = jnp.concatenate([hi, shed_max, jnp.full(n_branch + 1, 1e6)]) / MW_SCALE
    lower = jnp.concatenate([lo, jnp.zeros(n_bus + n_branch + 1)]) / MW_SCALE
    inequality = jnp.concatenate([flow_of_x - overload, -flow_of_x - overload, eye, -eye])
    rhs = jnp.concatenate([
        (limit + base_flow) / MW_SCALE, (limit - base_flow) / MW_SCALE, upper, -lower
    ])  # fmt: skip
    return (
        jnp.diag(curvature),
        linear,
        balance[None, :],
        jnp.sum(load, keepdims=True) / MW_SCALE,
        inequality,
        rhs,
    )


def solve_step_opf(state, params, rating_margin: float = 0.05) -> StepOPF:
    """The single-step DC-OPF of one grid (vmap it over a batch)."""
    grid = params.grid
    problem = _problem(state, params, rating_margin)
    x, _, _, _, converged, _ = qpax.solve_qp(*problem, max_iter=MAX_ITER, solver_tol=1e-4)
    x = x * MW_SCALE
    n_gen, n_bus = grid.n_gen, grid.n_bus
    return StepOPF(
        pg=x[:n_gen],
        shed=jnp.maximum(x[n_gen : n_gen + n_bus], 0.0),
        overload_mw=jnp.sum(jnp.maximum(x[n_gen + n_bus : -1], 0.0)),
        unserved_mw=jnp.maximum(x[-1], 0.0),
        converged=jnp.asarray(converged, bool),
    )
