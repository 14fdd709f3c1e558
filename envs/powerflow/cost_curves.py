"""Generator cost curves: MATPOWER ``gencost`` rows read once, evaluated once.

:func:`costs_from_gencost` splits the rows into quadratic coefficients and padded
piecewise-linear breakpoints; :func:`cost_rate` evaluates them for NumPy (the host OPF,
float64) and for ``jax.numpy`` (the environment, inside ``jit``) with the same code, so the
environment's cost and the OPF's true cost cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from envs.powerflow.matpower import GENCOST_POLY, GENCOST_PWL


def costs_from_gencost(gencost: np.ndarray | None, n_gen: int, source: str) -> dict:
    """``c2, c1, c0`` [G] and ``pwl_mw, pwl_usd`` [G, K] (padded by repeating the last
    breakpoint), ``is_pwl`` [G] from gencost rows of the in-service generators (None: free).

    ``source`` names the data in the one-line ValueError a row we cannot use raises.
    """
    c = np.zeros((n_gen, 3))  # c2, c1, c0
    is_pwl = np.zeros(n_gen, dtype=bool)
    points = [np.zeros((2, 2)) for _ in range(n_gen)]
    if gencost is not None:
        gencost = np.asarray(gencost, dtype=float)
        if gencost.shape[0] != n_gen:
            raise ValueError(
                f"{source}: gencost has {gencost.shape[0]} rows for {n_gen} in-service generators"
            )
    for g in range(n_gen if gencost is not None else 0):
        model, n_cost, data = int(gencost[g, 0]), int(gencost[g, 3]), gencost[g, 4:]
        if model == GENCOST_PWL:
            is_pwl[g] = True
            points[g] = data[: 2 * n_cost].reshape(n_cost, 2)
        elif model != GENCOST_POLY:
            raise ValueError(f"{source}: generator {g}: unknown cost model {gencost[g, 0]:g}")
        elif n_cost > 3:
            raise ValueError(
                f"{source}: generator {g}: polynomial cost of degree {n_cost - 1} > 2 unsupported"
            )
        else:
            c[g, 3 - n_cost :] = data[:n_cost]
    k = max(2, *(len(p) for p in points)) if n_gen else 2
    padded = np.stack([np.concatenate([p, np.repeat(p[-1:], k - len(p), 0)]) for p in points])
    padded = padded if n_gen else np.zeros((0, k, 2))
    return {
        "c2": c[:, 0],
        "c1": c[:, 1],
        "c0": c[:, 2],
        "pwl_mw": padded[..., 0],
        "pwl_usd": padded[..., 1],
        "is_pwl": is_pwl,
    }


def _lift(xp, array, ndim: int):
    """Prepends size-1 axes (the project forbids implicit rank promotion)."""
    array = xp.asarray(array)
    return array.reshape((1,) * (ndim - array.ndim) + array.shape)


def cost_rate(xp, c2, c1, c0, pwl_mw, pwl_usd, is_pwl, pg_mw):
    """Cost rate [..., G] in $/h of each generator at output ``pg_mw`` [..., G] MW.

    ``xp`` is ``numpy`` or ``jax.numpy``. Quadratic c2·p² + c1·p + c0, or piecewise linear
    through the breakpoints [G, K], extended beyond the first and last breakpoint with the
    first and last non-degenerate segments' slopes (as MATPOWER).
    """
    nd = pg_mw.ndim
    quadratic = (_lift(xp, c2, nd) * pg_mw + _lift(xp, c1, nd)) * pg_mw + _lift(xp, c0, nd)
    x, y = xp.asarray(pwl_mw), xp.asarray(pwl_usd)
    width = x[:, 1:] - x[:, :-1]  # [G, K-1]; 0 for padding and repeated breakpoints
    real = width > 0
    slope = xp.where(real, (y[:, 1:] - y[:, :-1]) / xp.where(real, width, 1.0), 0.0)
    inside = xp.clip(pg_mw[..., None] - _lift(xp, x[:, :-1], nd + 1), 0.0, _lift(xp, width, nd + 1))
    pwl = _lift(xp, y[:, 0], nd) + xp.sum(_lift(xp, slope, nd + 1) * inside, axis=-1)
    n_seg = width.shape[-1]
    first_real = xp.argmax(real, axis=-1)  # [G]
    last_real = n_seg - 1 - xp.argmax(xp.flip(real, axis=-1), axis=-1)
    first_slope = xp.take_along_axis(slope, first_real[:, None], axis=-1)[:, 0]
    last_slope = xp.take_along_axis(slope, last_real[:, None], axis=-1)[:, 0]
    below = xp.minimum(pg_mw - _lift(xp, x[:, 0], nd), 0.0) * _lift(xp, first_slope, nd)
    above = xp.maximum(pg_mw - _lift(xp, x[:, -1], nd), 0.0) * _lift(xp, last_slope, nd)
    return xp.where(_lift(xp, is_pwl, nd), pwl + below + above, quadratic)
