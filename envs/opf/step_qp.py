"""Single-step DC optimal power flow as a dense QP solved in JAX (qpax), per grid, jit/vmap-able.

What an operator's security-constrained dispatch does each interval, on the latest state
(persistence forecast of demand and availability, the current topology, the band each unit
can reach this step)::

    min   sum_g (c2 p_g^2 + c1 p_g)  -  curtailment price x renewable output  +  VOLL x shed
    s.t.  sum_g p_g + sum_s battery_s + sum_n shed_n = energised demand + shunts
          |PTDF (C_g p + C_s battery + shed - demand - shunts)|_l <= (1 - margin) rating_l
          lo_g <= p_g <= hi_g,  battery within power and energy,  0 <= shed_n <= demand_n

The PTDF is that of the topology the step will meet (out-of-service branches removed unless
their reclosing is due, buses cut off from the slack dropped with their devices). Shedding up
to a bus's whole demand keeps almost every instance feasible; a grid whose QP does not solve
(a generator's minimum alone overloads a branch, a unit islanded behind a branch it overloads
and cannot ramp off in one step) says so and solves once more with every limit's excess priced
(``elastic_qp``, ``env.opf_fallback="elastic"``, the default): the dispatch still reads the
network. ``env.opf_fallback="merit_order"`` drops the network there instead.
Batteries discharge whenever that displaces any cost (a single step sees no future value of
the energy, exactly like the HiGHS myopic OPF); the learned residual can hold them back. Left
out: the phase shift of transformers (branch flows are the PTDF part only). Branch limits are
hard, not penalised: a per-branch overload slack made the QP 26 variables larger on ieee14,
and a single shared one let every branch load up to the worst one's overload for free (ieee14
peak demand: 6,940 % above the oracle against 154 %). The elastic fallback adds a pair a
screened row, and only in the solve of a grid that missed.

Why a JAX QP and not HiGHS: this runs inside the actors' jitted rollout for every grid of the
batch at every step (the policy's action prior, ``learner.prior``), where a host call per grid
would stall the device. ``envs.opf.dc_opf`` (HiGHS) stays the exact reference (cost, outer
approximation of quadratic costs, storage, multi-period).
"""

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import qpax

from envs.batching import compute_where, lapack_batch_safe
from envs.deprecation import MYOPIC_RENAME, renamed_attributes
from envs.opf import box_qp
from envs.opf.merit_order import MIN_CURVATURE, marginal_cost_coefficients, merit_order_targets
from envs.powerflow.dc_outages import outage_ptdf
from envs.sim.dispatch import reachable_band
from envs.sim.islands import state_kept_buses
from envs.sim.protection import dispatch_topology

MW_SCALE = 100.0  # variables in units of 100 MW
COST_SCALE = 10_000.0  # objective in 10 k$/h
LINEAR_CURVATURE = 1e-4  # in scaled units: keeps the QP strictly convex in every variable
# The clearing solver (``envs.opf.box_qp``) stops at SOLVER_TOL, or after MAX_ITER iterations.
# float32 rounding floors its residual near 1e-5 (the VOLL-priced terms times eps); 5e-5 is
# 0.005 MW of balance or flow and 0.005 $/MWh of marginal cost.
MAX_ITER = 30
SOLVER_TOL = 5e-5
# Flow rows of the clearing QP: SCREENED_BRANCHES on grids with more than SMALL_GRID_BRANCHES
# branches, SMALL_GRID_SCREENED on smaller ones. A screened-out branch that ends above its limit
# brings a re-solve with it, up to MAX_SCREENING_ROUNDS solves in all. Each row costs every
# iteration (ieee14 at batch 256: 4 rows 47 k solves/s, 8 rows 32 k, 16 rows 18 k, all 20
# rows 10 k; benchmarks/README.md, "Batched OPF").
SCREENED_BRANCHES = 16
SMALL_GRID_SCREENED = 8
SMALL_GRID_BRANCHES = 64
MAX_SCREENING_ROUNDS = 3
BINDING_LOADING = 0.98  # a screened branch loaded this much stays in a re-solve
# The dense reference (qpax) runs a fixed count: its own stop test never passes with
# VOLL-priced bounds (see ``solved``). In float32 the duality gap of ieee118's 724 rows reaches
# 1e-3 of the cost only after about 20-24 iterations.
DENSE_MAX_ITER = 24
DENSE_SOLVER_TOL = 1e-4
MIN_BAND_MW = 1e-2
# float64 keeps the interior point's system well conditioned with bands and curvatures this
# much smaller, so the regularised QP's optimum moves to within 1e-2 MW of the exact one.
MIN_BAND_MW_F64 = 1e-5
F64_CURVATURE_SHRINK = 1e-3
FEASIBILITY_TOL = 1e-3  # 0.1 MW of balance or flow; 0.1 $/MWh of marginal cost
# The elastic fallback's price of a MW above a branch limit, in units of the value of lost load:
# above it, so the solve sheds what it can before it overloads, and an overload is the excess
# no dispatch within the bands removes. Its excess variables are boxed by the total load plus
# every unit's maximum, more than any flow in the grid.
ELASTIC_PRICE_VOLL = 2.0


class StepOPF(NamedTuple):
    pg: jax.Array  # [G] MW
    storage: jax.Array  # [S] MW (+ discharge)
    shed: jax.Array  # [N] MW
    converged: jax.Array  # [] bool: the QP solved to FEASIBILITY_TOL (else a fallback ran)
    residual: jax.Array  # [] the QP's KKT residual in scaled units (``kkt_residual``)


def sheddable(state, params, energised) -> jax.Array:
    """[N] MW each bus can shed this step: the env's share of its demand where energised."""
    return jnp.where(energised, params.devices.shed_max * state.demand, 0.0)


def device_bounds(state, params, energised):
    """``(lo, hi)`` [G + S + N] MW of unit outputs, battery outputs (+ discharge) and shedding
    this step: ramp bands, renewable availability, battery energy, and the share of each
    energised bus's demand the env can shed (``sheddable``).

    Why the env's share and not the whole demand: a plan that sheds more than the env can
    carries out its shortfall through the env's frequency control, on flows the plan never
    checked. Bounded by the whole demand, the myopic OPF planned whole buses shed on ieee14's
    cascading days; the env shed half of each, and the rest, moved by frequency control, ran
    branches above their ratings (benchmarks/README.md, "The clearing sheds what the env can
    shed")."""
    devices, grid, consts = params.devices, params.grid, params.consts
    renewable = devices.is_renewable
    online = (state.available > 0.0) & ~renewable
    lo, hi = reachable_band(state.pg, online, devices)
    hi = jnp.where(renewable, state.available, hi)
    lo = jnp.where(renewable, 0.0, lo)
    fed = energised[grid.gen_bus]
    eta, dt = consts.storage_efficiency, consts.step_hours
    discharge = jnp.minimum(devices.storage_pmax, state.soc * eta / dt)
    charge = jnp.minimum(devices.storage_pmax, (devices.storage_emax - state.soc) / (eta * dt))
    battery_fed = energised[devices.storage_bus]
    lo = jnp.concatenate(
        [jnp.where(fed, lo, 0.0), jnp.where(battery_fed, -charge, 0.0), jnp.zeros(grid.n_bus)]
    )
    hi = jnp.concatenate(
        [
            jnp.where(fed, hi, 0.0),
            jnp.where(battery_fed, discharge, 0.0),
            sheddable(state, params, energised),
        ]
    )
    # An interior point needs a strictly feasible interior: a variable pinned at one value
    # (offline unit, no wind, empty battery, bus without load) gets a band of MIN_BAND_MW.
    return lo, jnp.maximum(hi, lo + min_band(lo.dtype))


def min_band(dtype) -> float:
    """Smallest width MW of a variable's band, by precision (see ``device_bounds``)."""
    return MIN_BAND_MW_F64 if dtype == jnp.float64 else MIN_BAND_MW


def regularising_curvatures(dtype) -> tuple[float, float]:
    """``(renewable $/MW^2h, battery and shedding in scaled units)``: the curvature given to
    variables with linear costs, by precision. A congested dispatch of units with flat cost
    curves moves by ~0.1 MW under the float32 values."""
    shrink = F64_CURVATURE_SHRINK if dtype == jnp.float64 else 1.0
    return MIN_CURVATURE * shrink, LINEAR_CURVATURE * shrink


class DenseQP(NamedTuple):
    """``min 1/2 x'Qx + q'x`` s.t. ``A x = b``, ``G x <= h``: qpax's problem, in its argument
    order (``qpax.solve_qp(*qp)``)."""

    quad: jax.Array  # Q [V, V]
    lin: jax.Array  # q [V]
    eq: jax.Array  # A [E, V]
    eq_rhs: jax.Array  # b [E]
    ineq: jax.Array  # G [M, V]
    ineq_rhs: jax.Array  # h [M]


class ClearingProblem(NamedTuple):
    """The single-step DC-OPF of one grid over ``x = [p (G), battery (S), shed (N)]``, in
    scaled units (MW / ``MW_SCALE``, cost / ``COST_SCALE``): what both solvers read."""

    curvature: jax.Array  # [V] of the objective's diagonal
    linear: jax.Array  # [V]
    lo: jax.Array  # [V]
    hi: jax.Array  # [V]
    load: jax.Array  # [N] energised demand and shunts
    limit: jax.Array  # [L] branch ratings less the margin
    ptdf: jax.Array  # [L, N] of the topology the step meets
    injection: jax.Array  # [N, V] bus injection per unit of each variable
    demand: jax.Array  # [N] energised demand: the shedding bound where none within the share


def clearing_problem(state, params, rating_margin: float, price_offset=None) -> ClearingProblem:
    """The step's OPF; ``price_offset [G + S]`` $/MWh is added to the units' and batteries'
    linear costs."""
    grid, devices = params.grid, params.devices
    n_bus = grid.n_bus
    # A tripped branch whose cooldown ends recloses at the start of the step: dispatch for the
    # topology the flows will meet (scheduled outages are not known ahead, so not these).
    in_service = dispatch_topology(state.branch_in_service, state.branch_cooldown)
    energised = state_kept_buses(state, params, in_service)
    lo, hi = device_bounds(state, params, energised)
    load = jnp.where(energised, state.demand + grid.bus_gs, 0.0)  # [N] MW
    curvature, linear = objective_terms(params, lo.dtype, price_offset)
    storage_to_bus = jax.nn.one_hot(devices.storage_bus, n_bus, dtype=lo.dtype).T  # [N, S]
    injection = jnp.concatenate([grid.gen_to_bus, storage_to_bus, jnp.eye(n_bus)], axis=1)
    return ClearingProblem(
        curvature=curvature,
        linear=linear,
        lo=lo / MW_SCALE,
        hi=hi / MW_SCALE,
        load=load / MW_SCALE,
        limit=(1.0 - rating_margin) * grid.branch_rating / MW_SCALE,
        ptdf=topology_ptdf(grid, in_service, energised),
        injection=injection.astype(lo.dtype),
        demand=jnp.where(energised, state.demand, 0.0) / MW_SCALE,
    )


def objective_terms(params, dtype, price_offset=None) -> tuple[jax.Array, jax.Array]:
    """``(curvature, linear)`` [G + S + N] of the clearing's diagonal objective over
    ``x = [p, battery, shed]`` in scaled units: the units' cost curves, the renewables' lost
    curtailment credit, free battery energy, shedding at the value of lost load, plus
    ``price_offset [G + S]`` $/MWh (the bids) on the units' and batteries' offers."""
    grid, devices, consts = params.grid, params.devices, params.consts
    n_bus, n_storage = grid.n_bus, devices.storage_bus.shape[0]
    c2, c1 = marginal_cost_coefficients(grid)
    renewable = devices.is_renewable
    renewable_curv, linear_curv = regularising_curvatures(dtype)
    gen_curv = jnp.where(renewable, renewable_curv, c2) * 2.0 * MW_SCALE**2 / COST_SCALE
    gen_lin = jnp.where(renewable, -consts.curtailment_cost, c1) * MW_SCALE / COST_SCALE
    curvature = jnp.concatenate([gen_curv, jnp.full(n_storage + n_bus, linear_curv)])
    linear = jnp.concatenate(
        [gen_lin, jnp.zeros(n_storage), jnp.full(n_bus, consts.voll * MW_SCALE / COST_SCALE)]
    )
    if price_offset is not None:
        offset = jnp.concatenate([price_offset, jnp.zeros(n_bus, price_offset.dtype)])
        linear = linear + offset * MW_SCALE / COST_SCALE
    return curvature, linear


def topology_ptdf(grid, in_service, energised) -> jax.Array:
    """``ptdf_matrix`` for this topology: the grid's own PTDF while every branch is in service
    (most steps), else a low-rank update of it for the outaged branches, the dense solve only
    where that cannot serve (``envs.powerflow.dc_outages.outage_ptdf``)."""
    return outage_ptdf(grid, in_service, energised)


def dense_qp(problem: ClearingProblem) -> DenseQP:
    """The clearing problem for qpax: every flow limit and bound a row of G."""
    flow_of_x = problem.ptdf @ problem.injection  # [L, V]
    base_flow = problem.ptdf @ problem.load  # the load alone drives it (withdrawn: subtracted)
    eye = jnp.eye(problem.linear.shape[0], dtype=problem.linear.dtype)
    inequality = jnp.concatenate([flow_of_x, -flow_of_x, eye, -eye])
    rhs = jnp.concatenate(
        [
            problem.limit + base_flow,
            problem.limit - base_flow,
            problem.hi,
            -problem.lo,
        ]
    )
    equality = jnp.ones((1, problem.linear.shape[0]), problem.linear.dtype)
    total = jnp.sum(problem.load, keepdims=True)
    return DenseQP(jnp.diag(problem.curvature), problem.linear, equality, total, inequality, rhs)


def screened_qp(problem: ClearingProblem, branches) -> box_qp.BoxQP:
    """The problem with the flow limits of ``branches [K]`` only, bounds as boxes."""
    ptdf = problem.ptdf[branches]  # [K, N]
    base_flow = ptdf @ problem.load
    limit = problem.limit[branches]
    return box_qp.BoxQP(
        curvature=problem.curvature,
        linear=problem.linear,
        eq_rows=jnp.ones((1, problem.linear.shape[0]), problem.linear.dtype),
        eq_rhs=jnp.sum(problem.load, keepdims=True),
        rows=ptdf @ problem.injection,
        row_lo=base_flow - limit,
        row_hi=base_flow + limit,
        lo=problem.lo,
        hi=problem.hi,
    )


def branch_flows(problem: ClearingProblem, x) -> jax.Array:
    """[L] flows of the dispatch ``x`` (scaled units)."""
    return problem.ptdf @ (problem.injection @ x - problem.load)


def screened_branch_count(grid) -> int:
    """Flow rows the clearing QP keeps (``SCREENED_BRANCHES``, ``SMALL_GRID_SCREENED``)."""
    rows = SCREENED_BRANCHES if grid.n_branch > SMALL_GRID_BRANCHES else SMALL_GRID_SCREENED
    return min(grid.n_branch, rows)


def solve_myopic_opf(
    state,
    params,
    rating_margin: float = 0.05,
    price_offset=None,
    *,
    max_iter: int = MAX_ITER,
    solver_tol: float = SOLVER_TOL,
    screened: int | None = None,
    max_rounds: int = MAX_SCREENING_ROUNDS,
) -> StepOPF:
    """The single-step DC-OPF of one grid (vmap it over a batch). ``price_offset [G + S]``
    ($/MWh, optional) shifts each unit's and battery's offer: what a learned policy bids.

    Bounds are boxes and only ``screened`` branch limits (default ``screened_branch_count``)
    are rows of the QP (``envs.opf.box_qp``): first those most loaded by the present dispatch
    moved into this step's bands (consecutive steps are close), then, while a screened-out
    branch ends above its limit, a re-solve that adds the violated branches and keeps the
    binding ones, up to ``max_rounds`` solves. Where that does not converge (shedding within
    the env's share of each bus leaves no feasible dispatch: a load pocket whose imports cannot
    carry the rest of its load), one more solve lets whole buses shed: a plan the env carries
    out only in part, but one that reads the network. Where that does not converge either, or
    returns a non-finite point, ``converged`` is False, ``residual`` says by how much it missed
    (an unscreened overload counts) and ``params.consts.opf_fallback`` decides the dispatch:
    ``"merit_order"``, ``pg`` by ``fallback_pg`` (the merit order, which ignores the network)
    and the batteries idle; ``"elastic"``, the solve of ``elastic_qp`` (each MW above a limit
    priced at ``ELASTIC_PRICE_VOLL`` x VOLL), and the merit order only where that fails too.
    """
    problem = clearing_problem(state, params, rating_margin, price_offset)
    n_other = params.devices.storage_bus.shape[0] + params.grid.n_bus  # batteries, shedding
    present = jnp.concatenate([state.pg, jnp.zeros(n_other, state.pg.dtype)])
    guess = jnp.clip(present / MW_SCALE, problem.lo, problem.hi)
    loading = jnp.abs(branch_flows(problem, guess)) / problem.limit
    count = screened or screened_branch_count(params.grid)
    solve = partial(_screened_solve, count=count, max_iter=max_iter, solver_tol=solver_tol)
    result = solve(problem, loading)
    # Under vmap a re-solve runs only for the grids whose screen missed a branch.
    for _ in range(max_rounds - 1):
        result = compute_where(solve, result[2] > FEASIBILITY_TOL, result, problem, result[1])

    def whole_buses(problem, loading):
        n_bus = problem.demand.shape[0]
        shed_hi = jnp.maximum(problem.hi[-n_bus:], problem.demand)
        return solve(problem._replace(hi=problem.hi.at[-n_bus:].set(shed_hi)), loading)

    # the QP's own residual, not a screened-out overload: the rounds above handle those
    infeasible = result[0].residual >= FEASIBILITY_TOL
    result = compute_where(whole_buses, infeasible, result, problem, result[1])
    solution, _, overload = result
    residual = jnp.maximum(solution.residual, jnp.maximum(overload, 0.0))
    converged = residual < FEASIBILITY_TOL
    if params.consts.opf_fallback != "elastic":
        return _dispatch(solution.x, converged, residual, state, params)
    elastic = partial(
        _elastic_solve,
        count=count,
        max_iter=max_iter,
        solver_tol=solver_tol,
        voll=params.consts.voll,
    )
    # Only the grids that missed: the same rows ranked by the last solve's flows, the env's
    # own shedding share (a plan it carries out whole).
    x = compute_where(elastic, ~converged, solution.x, problem, result[1])
    use = converged | jnp.all(jnp.isfinite(x))
    return _dispatch(x, use, residual, state, params, converged)


def elastic_qp(qp: box_qp.BoxQP, price, most) -> box_qp.BoxQP:
    """``qp`` with each range row free to leave its range: ``C x - up + down`` must lie in it,
    ``up, down`` in ``[0, most]`` at ``price`` each (scaled units), so a row that no ``x`` in
    the boxes brings inside ends outside by the least the boxes allow."""
    m, dtype = qp.rows.shape[0], qp.rows.dtype
    excess_curvature = jnp.full(2 * m, regularising_curvatures(dtype)[1], dtype)
    eye = jnp.eye(m, dtype=dtype)
    return qp._replace(
        curvature=jnp.concatenate([qp.curvature, excess_curvature]),
        linear=jnp.concatenate([qp.linear, jnp.full(2 * m, price, dtype)]),
        eq_rows=jnp.concatenate([qp.eq_rows, jnp.zeros((qp.eq_rows.shape[0], 2 * m), dtype)], 1),
        rows=jnp.concatenate([qp.rows, -eye, eye], axis=1),
        lo=jnp.concatenate([qp.lo, jnp.zeros(2 * m, dtype)]),
        hi=jnp.concatenate([qp.hi, jnp.full(2 * m, most, dtype)]),
    )


def _elastic_solve(problem: ClearingProblem, loading, *, count, max_iter, solver_tol, voll):
    """The dispatch ``x`` [V] of ``elastic_qp`` on the ``count`` branches of highest
    ``loading``, each MW above a limit priced at ``ELASTIC_PRICE_VOLL`` x ``voll``; NaN where
    even that does not solve (a balance no unit within its band can meet)."""
    _, branches = jax.lax.top_k(loading, count)
    price = ELASTIC_PRICE_VOLL * voll * MW_SCALE / COST_SCALE
    most = jnp.sum(problem.load) + jnp.sum(jnp.maximum(problem.hi, 0.0))
    solution = box_qp.solve_box_qp(
        elastic_qp(screened_qp(problem, branches), price, most), max_iter, solver_tol
    )
    x = solution.x[: problem.linear.shape[0]]
    return jnp.where(solution.residual < FEASIBILITY_TOL, x, jnp.nan)


def _screened_solve(problem: ClearingProblem, loading, *, count, max_iter, solver_tol):
    """``(solution, next loading [L], largest overload [])`` of the QP with the ``count``
    branches of highest ``loading``. The next loading ranks binding rows first, then violated
    ones, then the most loaded: a re-solve keeps what bound and adds what the screen missed."""
    _, branches = jax.lax.top_k(loading, count)
    solution = box_qp.solve_box_qp(screened_qp(problem, branches), max_iter, solver_tol)
    flows = jnp.abs(branch_flows(problem, solution.x))
    flow_loading = flows / problem.limit
    screened = jnp.zeros_like(loading, bool).at[branches].set(True)
    binding = screened & (flow_loading > BINDING_LOADING)
    next_loading = flow_loading + jnp.where(binding, 2.0, 0.0)
    return solution, next_loading, jnp.max(flows - problem.limit)


def solve_myopic_opf_dense(
    state,
    params,
    rating_margin: float = 0.05,
    price_offset=None,
    *,
    max_iter: int = DENSE_MAX_ITER,
    solver_tol: float = DENSE_SOLVER_TOL,
) -> StepOPF:
    """``solve_myopic_opf`` by qpax on the dense QP (every bound and flow limit a row): the
    reference the clearing solver is measured against. ``max_iter`` and ``solver_tol`` are
    qpax's (more iterations and a tighter tolerance pay off in float64 only: in float32 qpax's
    floors on slacks and multipliers stall it near 16)."""
    problem = dense_qp(clearing_problem(state, params, rating_margin, price_offset))
    x, z, y = solve_qp(problem, max_iter, solver_tol)
    residual = kkt_residual(problem, x, z, y)
    return _dispatch(x, residual_ok(residual, z), residual, state, params)


def _dispatch(x, ok, residual, state, params, converged=None) -> StepOPF:
    """The solution ``x`` (scaled) as MW where ``ok``, else the fallback; ``converged``
    (default ``ok``): whether ``x`` met every limit."""
    x = x * MW_SCALE
    n_gen, n_storage = params.grid.n_gen, params.devices.storage_bus.shape[0]
    return StepOPF(
        pg=jnp.where(ok, x[:n_gen], fallback_pg(state, params)),
        storage=jnp.where(ok, x[n_gen : n_gen + n_storage], 0.0),
        shed=jnp.where(ok, jnp.maximum(x[n_gen + n_storage :], 0.0), 0.0),
        converged=ok if converged is None else converged,
        residual=residual,
    )


def solve_qp(
    problem: DenseQP, max_iter: int = DENSE_MAX_ITER, solver_tol: float = DENSE_SOLVER_TOL
):
    """``(x, z, y)`` of qpax's interior-point solve of ``problem``; under ``vmap`` on CPU in
    chunks of grids (``batching.lapack_batch_safe``)."""

    def solve(*problem):
        with jax.numpy_rank_promotion("allow"):  # qpax broadcasts [n, p] * [p] inside
            x, _, z, y, _, _ = qpax.solve_qp(*problem, max_iter=max_iter, solver_tol=solver_tol)
        return x, z, y

    n, m = problem.quad.shape[-1], problem.eq.shape[-2]
    # qpax factors [n, n] and [m, m] by Cholesky and solves [n, m] and [n, 1] right-hand sides
    flops = max(n**3 // 3, n * n * max(m, 1), m**3 // 3)
    return lapack_batch_safe(solve, flops)(*problem)


def kkt_residual(problem: DenseQP, x, z, y) -> jax.Array:
    """The largest of the primal infeasibility (balance, flows, bounds), the stationarity
    residual and the duality gap (relative to the objective once that exceeds 1, i.e.
    $10k/h), in scaled units: 1e-3 is 0.1 MW of balance or flow, 0.1 $/MWh of marginal cost.
    NaN where the point is not finite.

    The gap is taken against the constraints' true slack ``h - G x``, not qpax's slack
    variables: qpax floors those and the multipliers at sqrt(eps) of float32 before each step,
    so a bound whose multiplier is a VOLL-sized price (shedding's) never shows a
    complementarity residual below ~0.03, even at the optimum.
    """
    quad, lin, eq, eq_rhs, ineq, ineq_rhs = problem
    slack = ineq_rhs - ineq @ x
    primal = jnp.maximum(jnp.max(-slack), jnp.max(jnp.abs(eq @ x - eq_rhs)))
    stationary = jnp.max(jnp.abs(quad @ x + lin + eq.T @ y + ineq.T @ z))
    # The gap relative to the objective once it exceeds $10k/h: the floors add up over the
    # few hundred bounds of ieee118 (0.006 at 16 iterations, 0.05 % of its cost).
    gap = jnp.sum(z * jnp.maximum(slack, 0.0))
    objective = 0.5 * x @ quad @ x + lin @ x
    residual = jnp.maximum(
        jnp.maximum(primal, stationary), gap / jnp.maximum(1.0, jnp.abs(objective))
    )
    finite = jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(z)) & jnp.isfinite(residual)
    return jnp.where(finite, residual, jnp.nan)


def residual_ok(residual, z) -> jax.Array:
    """Whether a point with ``kkt_residual`` ``residual`` (NaN: not finite) counts as solved."""
    return (residual < FEASIBILITY_TOL) & jnp.all(z >= 0.0)


def solved(problem, x, z, y) -> jax.Array:
    """Whether ``x`` is feasible, stationary and complementary to ``FEASIBILITY_TOL``
    (``kkt_residual``) with non-negative inequality multipliers."""
    return residual_ok(kkt_residual(problem, x, z, y), z)


def fallback_pg(state, params) -> jax.Array:
    """Merit-order outputs [G] MW for a grid whose QP did not solve."""
    return merit_order_targets(state, params)


# The old name, for one release.
__getattr__ = renamed_attributes(globals(), {"solve_step_opf": "solve_myopic_opf"}, MYOPIC_RENAME)
