"""Sparse linear programs whose constraint rows only grow, solved with HiGHS.

``SparseRows`` collects rows ``lower <= A x <= upper`` as COO triplets; ``LinearProgram``
keeps one HiGHS model loaded while rows are added (cut rounds, lazily added branch limits),
so each re-solve warm-starts from the previous optimal basis. Without the HiGHS bindings it
falls back to ``scipy.optimize.linprog`` on all rows (same optimum, slower).
"""

from typing import NamedTuple

import numpy as np
import scipy.optimize
import scipy.sparse as sp


class RowWise(NamedTuple):
    """Compressed-row arrays with the attribute names of a scipy CSR matrix."""

    shape: tuple[int]
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    nnz: int


class SparseRows:
    """Accumulates sparse constraint rows lower <= A x <= upper as COO triplets."""

    def __init__(self):
        self.rows, self.cols, self.vals, self.lower, self.upper = [], [], [], [], []
        self.n_rows = 0

    def add_block(self, lower, upper=None) -> int:
        """Rows numbered from the returned start; ``upper=None`` makes them equalities."""
        lower = np.ravel(np.asarray(lower, dtype=float))
        upper = lower if upper is None else np.broadcast_to(np.ravel(upper), lower.shape)
        start = self.n_rows
        self.n_rows += lower.size
        self.lower.append(lower)
        self.upper.append(upper)
        return start

    def add(self, rows, cols, vals) -> None:
        rows, cols = np.broadcast_arrays(np.asarray(rows), np.asarray(cols))
        self.rows.append(rows.ravel())
        self.cols.append(cols.ravel())
        self.vals.append(np.broadcast_to(np.asarray(vals, dtype=float), rows.shape).ravel())

    def row_wise(self) -> tuple[RowWise, np.ndarray, np.ndarray]:
        """The rows sorted into compressed-row arrays with plain NumPy (no scipy.sparse
        validation: this runs a few times per LP, thousands of LPs per evaluation)."""
        rows, cols, vals = (
            np.concatenate([*x, np.zeros(0, int)]) for x in (self.rows, self.cols, self.vals)
        )
        order = np.argsort(rows, kind="stable")
        indptr = np.searchsorted(rows[order], np.arange(self.n_rows + 1))
        matrix = RowWise((self.n_rows,), indptr, cols[order], vals[order], rows.size)
        return matrix, np.concatenate(self.lower), np.concatenate(self.upper)

    def matrix(self, n_vars: int) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
        if not self.rows:
            return sp.csr_array((self.n_rows, n_vars)), np.zeros(0), np.zeros(0)
        coo = sp.coo_array(
            (np.concatenate(self.vals), (np.concatenate(self.rows), np.concatenate(self.cols))),
            shape=(self.n_rows, n_vars),
        )
        return coo.tocsr(), np.concatenate(self.lower), np.concatenate(self.upper)


def _load_highs():
    """The HiGHS Python bindings: ``highspy`` (a dependency), else the copy scipy ships.

    Returns ``(module, model class)`` or None; without either, LPs go through
    ``scipy.optimize.linprog`` (same optimum, no warm start).
    """
    try:
        import highspy

        return highspy, highspy.Highs
    except ImportError:
        pass
    try:
        from scipy.optimize._highspy import _core
    except ImportError:
        return None
    return (_core, _core._Highs) if hasattr(_core, "_Highs") else None


_BINDINGS = _load_highs()
HIGHS = _BINDINGS[0] if _BINDINGS else None  # the bindings module, or None


class LinearProgram:
    """min cost @ x within column bounds and rows lower <= A x <= upper that only grow.

    With the HiGHS bindings the model stays loaded between solves, so a solve
    after adding cuts or branch limits restarts from the previous optimal basis (a few hundred
    dual simplex pivots instead of a full solve). Without it, every solve is a fresh
    ``scipy.optimize.linprog`` of all rows (same optimum, slower).
    """

    def __init__(self, cost: np.ndarray, bounds: np.ndarray, use_highs: bool = True):
        self.cost, self.bounds, self.blocks = cost, bounds, []
        self.highs = _new_highs_model(cost, bounds) if use_highs and HIGHS else None

    def add_rows(self, rows: SparseRows) -> None:
        if rows.n_rows == 0:
            return
        if self.highs is None:
            self.blocks.append(rows.matrix(self.cost.size))
            return
        a, lower, upper = rows.row_wise()
        self.highs.addRows(
            a.shape[0],
            lower,
            upper,
            a.nnz,
            a.indptr[:-1].astype(np.int32),
            a.indices.astype(np.int32),
            a.data,
        )

    def solve(self) -> tuple[np.ndarray, float]:
        """Optimal ``(x, objective)``; RuntimeError when HiGHS reports anything but optimal."""
        if self.highs is None:
            return self._solve_with_linprog()
        self.highs.run()
        status = self.highs.getModelStatus()
        if status != HIGHS.HighsModelStatus.kOptimal:
            raise RuntimeError(f"DC dispatch LP failed: {self.highs.modelStatusToString(status)}")
        x = np.asarray(self.highs.getSolution().col_value)
        return x, float(self.highs.getInfo().objective_function_value)

    def _solve_with_linprog(self):
        a = sp.vstack([blk[0] for blk in self.blocks]).tocsr()
        lower = np.concatenate([blk[1] for blk in self.blocks])
        upper = np.concatenate([blk[2] for blk in self.blocks])
        eq = lower == upper
        above, below = ~eq & np.isfinite(upper), ~eq & np.isfinite(lower)
        res = scipy.optimize.linprog(
            self.cost,
            A_ub=sp.vstack([a[above], -a[below]]),
            b_ub=np.concatenate([upper[above], -lower[below]]),
            A_eq=a[eq],
            b_eq=upper[eq],
            bounds=self.bounds,
            method="highs",
        )
        if res.status != 0:
            raise RuntimeError(f"DC dispatch LP failed: {res.message}")
        return res.x, float(res.fun)


def _new_highs_model(cost: np.ndarray, bounds: np.ndarray):
    """A HiGHS object holding the columns (no rows yet), quiet."""
    highs = _BINDINGS[1]()
    highs.setOptionValue("output_flag", False)
    lp = HIGHS.HighsLp()
    lp.num_col_, lp.num_row_ = cost.size, 0
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, bounds[:, 0], bounds[:, 1]
    lp.a_matrix_.format_ = HIGHS.MatrixFormat.kColwise
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = cost.size, 0
    lp.a_matrix_.start_ = np.zeros(cost.size + 1, np.int32)
    if highs.passModel(lp) == HIGHS.HighsStatus.kError:
        raise RuntimeError("HiGHS rejected the DC dispatch model")
    return highs
