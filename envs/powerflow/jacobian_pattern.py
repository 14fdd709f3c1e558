"""The sparsity pattern of the AC Newton Jacobian and its LU elimination schedule (NumPy, once
per grid).

The pattern of Ybus, and so of the polar power-flow Jacobian, depends on the topology only.
:func:`jacobian_structure` orders the unknowns by minimum degree on the bus graph (each bus's
angle and magnitude together), computes the fill of the LU factors and the index arrays of every
elimination step, so ``envs.powerflow.acpf`` assembles and factorises each Newton step's values
with gathers and scatters instead of a dense solve. ``build_grid`` stores the result with the
grid; it lives apart from ``acpf`` because the grid is built before any flow is solved.
"""

from typing import NamedTuple

import numpy as np
from jax import numpy as jnp


class JacobianStructure(NamedTuple):
    """Sparsity of Ybus and of the Newton Jacobian's LU factors (int32/bool arrays).

    E Ybus entries, M unknowns, S LU entries (index S is a scratch slot that
    padding reads and writes), P the widest elimination step.
    """

    y_row: jnp.ndarray  # [E] bus of the entry's row (sorted)
    y_col: jnp.ndarray  # [E]
    y_is_diag: jnp.ndarray  # [E] bool
    y_diag: jnp.ndarray  # [N] entry of (n, n)
    y_branch: jnp.ndarray  # [4, L] entries of (f, f), (f, t), (t, f), (t, t)
    var_bus: jnp.ndarray  # [M] bus of each unknown, in elimination order
    var_is_vm: jnp.ndarray  # [M] bool: magnitude (Q equation) rather than angle (P equation)
    lu_source: jnp.ndarray  # [S] row of the stacked dS/dV candidates (4E = structural zero)
    lu_row_bus: jnp.ndarray  # [S]
    lu_col_bus: jnp.ndarray  # [S]
    lu_is_diag: jnp.ndarray  # [S] bool
    pivot_diag: jnp.ndarray  # [M] entry of (k, k)
    pivot_rows: jnp.ndarray  # [M, P] unknowns i > k coupled to k (padding: M)
    pivot_lower: jnp.ndarray  # [M, P] entries (i, k) (padding: S)
    pivot_upper: jnp.ndarray  # [M, P] entries (k, i) (padding: S)
    pivot_update: jnp.ndarray  # [M, P * P] entries (i, j) (padding: S)


def _minimum_degree(nodes: list[int], neighbours: dict[int, set]) -> tuple[list[int], dict]:
    """Greedy minimum-degree elimination order and the filled graph's adjacency."""
    graph = {v: set(neighbours[v]) for v in nodes}
    filled = {v: set(neighbours[v]) for v in nodes}
    order = []
    while graph:
        v = min(graph, key=lambda u: (len(graph[u]), u))
        around = graph.pop(v)
        for a in around:
            graph[a] |= around - {a}
            graph[a].discard(v)
            filled[a] |= around - {a}
        order.append(v)
    return order, filled


def _ybus_pattern(n_bus: int, branch_from, branch_to):
    pairs = {(n, n) for n in range(n_bus)}
    for f, t in zip(branch_from.tolist(), branch_to.tolist(), strict=True):
        pairs |= {(f, t), (t, f)}
    ordered = sorted(pairs)
    entry = {pair: e for e, pair in enumerate(ordered)}
    branch = [
        [entry[(f, f)], entry[(f, t)], entry[(t, f)], entry[(t, t)]]
        for f, t in zip(branch_from.tolist(), branch_to.tolist(), strict=True)
    ]
    return ordered, entry, np.array(branch, dtype=np.int32).reshape(-1, 4).T


def jacobian_structure(n_bus, slack, pq_buses, branch_from, branch_to) -> JacobianStructure:
    """Orders the Newton unknowns and precomputes the LU elimination schedule."""
    pairs, y_entry, y_branch = _ybus_pattern(n_bus, branch_from, branch_to)
    unknown_buses = [n for n in range(n_bus) if n != slack]
    neighbours = {n: set() for n in unknown_buses}
    for a, b in pairs:
        if a != b and a != slack and b != slack:
            neighbours[a].add(b)
    order, filled = _minimum_degree(unknown_buses, neighbours)
    pq = set(pq_buses)
    variables = [(n, is_vm) for n in order for is_vm in (False, True) if not is_vm or n in pq]
    first_var = {}
    for index, (bus, _) in enumerate(variables):
        first_var.setdefault(bus, index)
    lu_pairs = [
        (r, c)
        for r, (bus_r, _) in enumerate(variables)
        for c, (bus_c, _) in enumerate(variables)
        if bus_r == bus_c or bus_c in filled[bus_r]
    ]
    lu_entry = {pair: s for s, pair in enumerate(lu_pairs)}
    n_entries = len(pairs)
    source = []
    for r, c in lu_pairs:
        (bus_r, vm_r), (bus_c, vm_c) = variables[r], variables[c]
        e = y_entry.get((bus_r, bus_c))
        source.append(4 * n_entries if e is None else (2 * vm_r + vm_c) * n_entries + e)
    schedule = _elimination_schedule(len(variables), lu_pairs, lu_entry)
    var_bus = np.array([bus for bus, _ in variables], dtype=np.int32)
    as_int = lambda values: np.asarray(values, dtype=np.int32)  # noqa: E731
    return JacobianStructure(
        y_row=as_int([a for a, _ in pairs]),
        y_col=as_int([b for _, b in pairs]),
        y_is_diag=np.array([a == b for a, b in pairs]),
        y_diag=as_int([y_entry[(n, n)] for n in range(n_bus)]),
        y_branch=y_branch,
        var_bus=var_bus,
        var_is_vm=np.array([is_vm for _, is_vm in variables]),
        lu_source=as_int(source),
        lu_row_bus=var_bus[as_int([r for r, _ in lu_pairs])],
        lu_col_bus=var_bus[as_int([c for _, c in lu_pairs])],
        lu_is_diag=np.array([r == c for r, c in lu_pairs]),
        **schedule,
    )


def _elimination_schedule(n_var: int, lu_pairs, lu_entry) -> dict:
    later = [[] for _ in range(n_var)]
    for r, c in lu_pairs:
        if r > c:
            later[c].append(r)
    width = max(1, *(len(rows) for rows in later)) if n_var else 1
    scratch = len(lu_pairs)
    rows = np.full((n_var, width), n_var, dtype=np.int32)
    lower = np.full((n_var, width), scratch, dtype=np.int32)
    upper = np.full((n_var, width), scratch, dtype=np.int32)
    update = np.full((n_var, width, width), scratch, dtype=np.int32)
    for k in range(n_var):
        below = sorted(later[k])
        rows[k, : len(below)] = below
        lower[k, : len(below)] = [lu_entry[(i, k)] for i in below]
        upper[k, : len(below)] = [lu_entry[(k, i)] for i in below]
        for a, i in enumerate(below):
            update[k, a, : len(below)] = [lu_entry[(i, j)] for j in below]
    diag = np.array([lu_entry[(k, k)] for k in range(n_var)], dtype=np.int32)
    return {
        "pivot_diag": diag,
        "pivot_rows": rows,
        "pivot_lower": lower,
        "pivot_upper": upper,
        "pivot_update": update.reshape(n_var, width * width),
    }
