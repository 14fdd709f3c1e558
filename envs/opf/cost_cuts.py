"""The generation cost in the dispatch LP, by outer approximation: each unit's epigraph
variable ``z_g`` lies above cuts ``slope * pg - z <= -intercept``.

Quadratic costs start with a few tangents over the unit's range (``initial_cuts``) and,
around the previous dispatch, a close fan (``anchor_cuts``); after each solve the solve loop
adds a narrower fan at every dispatch whose true cost exceeds its epigraph
(``refining_cuts``). Piecewise-linear (convex) costs enter exactly, one cut per segment.
"""

from __future__ import annotations

import numpy as np

from envs.opf.dc_network import DCNetwork
from envs.opf.lp import SparseRows
from envs.opf.lp_rows import Layout

_FAN = np.array([-1.0, 0.0, 1.0])  # tangent offsets around a dispatch, in steps
_CUT_SHARE = 1.0  # refine the dispatches holding more than an even share of the error


def _pwl_segments(net: DCNetwork, g: int) -> tuple[np.ndarray, np.ndarray]:
    """Slopes and intercepts of the non-degenerate segments (a convex cost = their maximum)."""
    x, y = net.cost_pwl_mw[g], net.cost_pwl_usd[g]
    dx = np.diff(x)
    keep = dx > 0
    slopes = np.diff(y)[keep] / dx[keep]
    return slopes, y[:-1][keep] - slopes * x[:-1][keep]


def _tangent_cuts(net, gens, points):
    """Tangents (slope, intercept) of the quadratic cost of ``gens`` at ``points`` (same shape)."""
    c2, c1, c0 = net.cost_c2[gens], net.cost_c1[gens], net.cost_c0[gens]
    return 2.0 * c2 * points + c1, c0 - c2 * points * points


def initial_cuts(net, bounds, layout: Layout, n_tangents: int):
    """Cuts (z column, pg column, slope, intercept): PWL segments, a few tangents per curved
    quadratic cost and the exact line of each linear one."""
    pg_cols, z_cols = layout.columns("pg"), layout.columns("z")
    cuts = []
    quad = np.flatnonzero(~net.cost_is_pwl)
    for gens, n_points in (
        (quad[net.cost_c2[quad] != 0.0], n_tangents),
        (quad[net.cost_c2[quad] == 0.0], 1),
    ):
        if gens.size == 0:
            continue
        lo, hi = bounds[pg_cols[:, gens], 0], bounds[pg_cols[:, gens], 1]
        pts = lo[..., None] + (hi - lo)[..., None] * np.linspace(0.0, 1.0, n_points)
        slope, icpt = _tangent_cuts(net, gens[None, :, None], pts)
        tiled = np.broadcast_to
        cuts.append(
            (
                tiled(z_cols[:, gens, None], pts.shape),
                tiled(pg_cols[:, gens, None], pts.shape),
                slope,
                icpt,
            )
        )
    for g in np.flatnonzero(net.cost_is_pwl):
        slopes, icpts = _pwl_segments(net, g)
        shape = (layout.n_periods, slopes.size)
        cuts.append(
            (
                np.broadcast_to(z_cols[:, g, None], shape),
                np.broadcast_to(pg_cols[:, g, None], shape),
                np.broadcast_to(slopes, shape),
                np.broadcast_to(icpts, shape),
            )
        )
    return [tuple(np.ravel(a) for a in cut) for cut in cuts]


def anchor_cuts(net, bounds, layout: Layout, prev_pg: np.ndarray | None):
    """Tangents close around the previous dispatch in period 0 (curved costs only).

    A step's optimum usually lies near the last one, so a myopic OPF stepped along an episode
    starts with its optimum bracketed and needs fewer cut rounds."""
    gens = np.flatnonzero(~net.cost_is_pwl & (net.cost_c2 != 0.0))
    if prev_pg is None or gens.size == 0:
        return []
    cols = layout.columns("pg")[0, gens]
    lo, hi = bounds[cols, 0], bounds[cols, 1]
    offsets = np.array([-1.0, -0.25, 0.0, 0.25, 1.0]) / 64.0
    points = np.clip(prev_pg[gens, None] + (hi - lo)[:, None] * offsets, lo[:, None], hi[:, None])
    slope, icpt = _tangent_cuts(net, gens[:, None], points)
    z_cols = np.broadcast_to(layout.columns("z")[0, gens, None], points.shape)
    pg_cols = np.broadcast_to(cols[:, None], points.shape)
    return [tuple(np.ravel(a) for a in (z_cols, pg_cols, slope, icpt))]


def cut_rows(cuts) -> SparseRows:
    """Inequalities slope * pg - z <= -intercept."""
    rows = SparseRows()
    for z_col, pg_col, slope, icpt in cuts:
        start = rows.add_block(np.full(slope.size, -np.inf), -icpt)
        idx = start + np.arange(slope.size)
        rows.add(idx, pg_col, slope)
        rows.add(idx, z_col, -1.0)
    return rows


def refining_cuts(net, bounds, layout, pg, shortfall, tolerance, cut_round, n_tangents):
    """A small fan of tangents around every dispatch that holds a fair share of the remaining
    error (narrower each round), so the next optimum is bracketed too."""
    pg_cols, z_cols = layout.columns("pg"), layout.columns("z")
    t_idx, g_idx = np.nonzero(shortfall > _CUT_SHARE * tolerance / shortfall.size)
    lo, hi = bounds[pg_cols[t_idx, g_idx], 0], bounds[pg_cols[t_idx, g_idx], 1]
    step = (hi - lo) / (n_tangents * 4.0**cut_round)
    fan = pg[t_idx, g_idx][:, None] + step[:, None] * _FAN[None, :]
    points = np.clip(fan, lo[:, None], hi[:, None])
    slope, icpt = _tangent_cuts(net, g_idx[:, None], points)
    cols = np.broadcast_to(z_cols[t_idx, g_idx][:, None], points.shape)
    pcols = np.broadcast_to(pg_cols[t_idx, g_idx][:, None], points.shape)
    return [tuple(np.ravel(a) for a in (cols, pcols, slope, icpt))]
