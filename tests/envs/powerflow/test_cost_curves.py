"""One cost curve for the environment (JAX) and the OPF (NumPy), against a plain reference."""

import numpy as np
import pytest
from jax import numpy as jnp

from envs.opf import dc_opf
from envs.powerflow.cost_curves import cost_rate, costs_from_gencost

# Rows: quadratic, linear, a convex pwl with a repeated first breakpoint, a 2-point pwl.
GENCOST = np.array(
    [
        [2, 0, 0, 3, 0.01, 20, 100, 0, 0, 0, 0, 0],
        [2, 0, 0, 2, 25, 50, 0, 0, 0, 0, 0, 0],
        [1, 0, 0, 4, 10, 200, 10, 200, 60, 1500, 120, 3800],
        [1, 0, 0, 2, 0, 0, 300, 6000, 0, 0, 0, 0],
    ]
)


def _reference(row: np.ndarray, p: float) -> float:
    """Plain evaluation of one gencost row: the polynomial, or np.interp with linear ends."""
    n = int(row[3])
    if row[0] == 2:
        return float(np.polyval(row[4 : 4 + n], p))
    x, y = row[4 : 4 + 2 * n : 2], row[5 : 5 + 2 * n : 2]
    keep = np.concatenate([[True], np.diff(x) > 0])  # a repeated breakpoint adds no segment
    x, y = x[keep], y[keep]
    if p < x[0]:
        return float(y[0] + (p - x[0]) * (y[1] - y[0]) / (x[1] - x[0]))
    if p > x[-1]:
        return float(y[-1] + (p - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2]))
    return float(np.interp(p, x, y))


def test_numpy_and_jax_cost_equal_the_plain_reference(x64):
    curves = costs_from_gencost(GENCOST, 4, "test")
    assert curves["pwl_mw"].shape == (4, 4) and curves["is_pwl"].tolist() == [0, 0, 1, 1]
    rng = np.random.default_rng(0)
    pg = np.concatenate([rng.uniform(-50, 400, (64, 4)), [[0, 0, 10, 300], [5, 5, 130, 320]]])
    expected = np.array([[_reference(GENCOST[g], p[g]) for g in range(4)] for p in pg])
    args = [curves[k] for k in ("c2", "c1", "c0", "pwl_mw", "pwl_usd", "is_pwl")]
    host = cost_rate(np, *args, pg)
    device = cost_rate(jnp, *(jnp.asarray(a) for a in args), jnp.asarray(pg))
    np.testing.assert_allclose(host, expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(np.asarray(device), host, rtol=1e-12, atol=1e-9)


def test_the_opf_prices_a_dispatch_as_the_environment_does():
    from envs.powerflow.case import load_case
    from envs.powerflow.grid import build_grid, generation_cost

    grid = build_grid(load_case("ieee14"))
    net = dc_opf.network_from_grid(grid)
    pg = np.random.default_rng(1).uniform(0, 1, (8, grid.n_gen)) * np.asarray(grid.gen_pmax)
    env_cost = np.asarray(generation_cost(grid, jnp.asarray(pg, jnp.float32)))
    np.testing.assert_allclose(dc_opf.generation_cost_per_h(net, pg), env_cost, rtol=1e-5)


@pytest.mark.parametrize(
    "row, message",
    [
        ([3, 0, 0, 2, 1, 1], "unknown cost model 3"),
        ([2, 0, 0, 4, 1, 1, 1, 1], "polynomial cost of degree 3 > 2"),
    ],
)
def test_rows_we_cannot_use_are_one_line_errors(row, message):
    with pytest.raises(ValueError, match=f"^case x: generator 0: {message}"):
        costs_from_gencost(np.array([row], dtype=float), 1, "case x")
    with pytest.raises(ValueError, match="gencost has 1 rows for 2 in-service generators"):
        costs_from_gencost(np.array([row], dtype=float), 2, "case x")
