"""A dispatch proposed without an OPF, made to respect the network in one linear correction.

A policy that proposes unit and battery outputs directly (a distilled policy: one network
pass, no QP) needs a safety layer that is not itself an optimisation. This one projects the
proposal onto the flow limits of its most loaded branches, once, with the same model the
clearing QP uses (``envs.opf.step_qp.clearing_problem``: the PTDF of the topology the step
meets, the reachable bands, the rating margin)::

    x    = clip(proposal, lo, hi), its imbalance spread over the conventional units by their
           room in the needed direction (as the env's AGC spreads it), what they cannot
           take then over the batteries too
    f    = PTDF (C x - load);  excess_l = max(|f_l| - limit_l, 0)
    K    = the ``rows`` branches with the largest excess (static, so it jits and vmaps)
    dx   = argmin  sum_v dx_v^2 / w_v   s.t.  sum_v dx_v = 0,
                                            (PTDF C)_k dx = -sign(f_k) excess_k  (k in K, excess > 0)
         = W A' (A W A')^-1 b
    out  = clip(x + dx, lo, hi)

``w_v`` is each conventional unit's and battery's reachable band, then its room in the
direction the first solve moves it (a unit pinned at a limit barely moves); renewables keep the
proposal (moving one down spills free energy) and shedding is never started. It is a linear step, not an OPF: the clip after it can leave a
branch above its limit, a branch outside K can rise above its own, and nothing is optimised
for cost. ``passes`` repeats it (each pass reads the flows the previous one left). What it
leaves over the limit shows in the evaluation's overload counts.

Why not a QP: the point of a distilled policy is a decision without one (a K x K solve per
grid instead of the clearing QP's 16-30 interior-point iterations).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from envs.opf import step_qp
from envs.opf.controls import dispatch_controls
from envs.types import EnvParams, EnvState

# Branches corrected per pass: more than ieee14 overloads in any recorded step, a few of
# ieee118's 186 (a step rarely overloads more; a correction that frees one can load another).
DEFAULT_ROWS = 8
# Added to the diagonal of A W A' (scaled units): a row no device can move stays solvable.
REGULARISATION = 1e-6


class Corrected(NamedTuple):
    pg: jax.Array  # [G] MW
    storage: jax.Array  # [S] MW (+ discharge)
    excess_before: jax.Array  # [] MW, sum over branches of the flow above its limit
    excess_after: jax.Array  # [] MW


def _balanced(x, problem, movable):
    """``x`` with its imbalance against the load spread over the movable variables in
    proportion to the room each has in the needed direction (what the env's AGC would do)."""
    shortfall = jnp.sum(problem.load) - jnp.sum(x)
    room = jnp.where(shortfall > 0, problem.hi - x, x - problem.lo) * movable
    share = room / jnp.maximum(jnp.sum(room), 1e-9)
    return jnp.clip(x + shortfall * share, problem.lo, problem.hi)


def _excess(problem, x):
    flow = step_qp.branch_flows(problem, x)
    return flow, jnp.maximum(jnp.abs(flow) - problem.limit, 0.0)


def _one_pass(x, problem, weight, balancing, rows: int):
    flow, excess = _excess(problem, x)
    _, worst = jax.lax.top_k(excess, rows)
    active = excess[worst] > 0.0
    sensitivity = problem.ptdf[worst] @ problem.injection  # [K, V]
    a = jnp.concatenate([jnp.ones((1, x.shape[0]), x.dtype), sensitivity])  # [K + 1, V]
    a = a * jnp.concatenate([jnp.ones(1, bool), active])[:, None]
    b = jnp.concatenate([jnp.zeros(1, x.dtype), -jnp.sign(flow[worst]) * excess[worst]])
    b = b * jnp.concatenate([jnp.ones(1, bool), active])
    inactive = jnp.concatenate([jnp.zeros(1, bool), ~active])
    regularisation = jnp.diag(jnp.where(inactive, 1.0, REGULARISATION))

    def least_move(w):
        return w * (a.T @ jnp.linalg.solve((a * w[None, :]) @ a.T + regularisation, b))

    # The band width says how far a device can move, not in which direction: a unit at its
    # maximum cannot help a branch that needs it up. Solve once for the directions, then again
    # with each device weighted by its room in its direction.
    first = least_move(weight)
    room = jnp.where(first > 0.0, problem.hi - x, x - problem.lo)
    move = least_move(jnp.maximum(room, 0.0) * (weight > 0.0))
    x = _balanced(jnp.clip(x + move, problem.lo, problem.hi), problem, balancing)
    return _balanced(x, problem, weight > 0.0)


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
    problem = step_qp.clearing_problem(state, params, rating_margin)
    n_dispatch = pg.shape[0] + storage.shape[0]
    n_bus = problem.load.shape[0]
    shed = jnp.zeros(n_bus, pg.dtype)
    x = jnp.concatenate([pg, storage, shed]) / step_qp.MW_SCALE
    x = jnp.clip(x, problem.lo, problem.hi)
    # Conventional units and batteries move; renewables keep what was proposed (moving one
    # down spills free energy at the curtailment price) and shedding is never started here.
    conventional = ~params.devices.is_renewable
    n_storage = storage.shape[0]
    movable = jnp.concatenate(
        [conventional, jnp.ones(n_storage, bool), jnp.zeros(n_bus, bool)]
    ).astype(x.dtype)
    weight = (problem.hi - problem.lo) * movable
    balancing = jnp.concatenate([conventional, jnp.zeros(n_storage + n_bus, bool)]).astype(x.dtype)
    rows = min(int(rows), problem.limit.shape[0])
    x = _balanced(_balanced(x, problem, balancing), problem, movable)
    before = jnp.sum(_excess(problem, x)[1])
    for _ in range(int(passes)):
        x = _one_pass(x, problem, weight, balancing, rows)
    after = jnp.sum(_excess(problem, x)[1])
    mw = x * step_qp.MW_SCALE
    n_gen = pg.shape[0]
    return Corrected(
        pg=mw[:n_gen],
        storage=mw[n_gen:n_dispatch],
        excess_before=before * step_qp.MW_SCALE,
        excess_after=after * step_qp.MW_SCALE,
    )


def corrected_controls(
    pg,
    storage,
    state: EnvState,
    params: EnvParams,
    rating_margin: float,
    rows: int = DEFAULT_ROWS,
    passes: int = 1,
) -> jax.Array:
    """``correct_dispatch`` as the env's device controls [C] (no shedding)."""
    out = correct_dispatch(pg, storage, state, params, rating_margin, rows, passes)
    return dispatch_controls(out.pg, out.storage, jnp.zeros_like(state.demand), state, params)
