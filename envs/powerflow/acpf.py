"""AC power flow in JAX: Newton–Raphson in polar coordinates, batched.

Follows MATPOWER's ``makeYbus``/``newtonpf``/``pfsoln``: unknowns are the voltage
angles of PV and PQ buses and the magnitudes of PQ buses; the Jacobian entries
are MATPOWER's ``dS/dVa`` and ``dS/dVm``. Every grid of a batch iterates until
its own mismatch is below ``tol`` (then it is frozen) or ``max_iter`` is
reached. Reactive limits are reported, not enforced (no PV→PQ switching).

The Jacobian is sparse and its pattern depends on the topology only, so
``envs.powerflow.jacobian_pattern`` orders the unknowns once (minimum degree on the bus
graph, each bus's angle and magnitude together), computes the fill of the LU
factors and the index arrays of every elimination step. Each Newton step then
assembles the Jacobian values straight into that pattern and factorises them
with a ``lax.scan`` over the pivots, every step a small gather/outer
product/scatter over the whole batch (no pivoting: the polar power-flow
Jacobian has dominant diagonal 2×2 blocks). Internally arrays are laid out
[entries, batch] so that each gather copies contiguous rows.

Per-grid branch outages only change the admittance values (the pattern is a
superset). Buses cut off from the slack get identity rows and columns, are
reported with zero voltage, and flows on dead or outaged branches are zero.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax import numpy as jnp

from envs.powerflow.dcpf import energised_buses
from envs.powerflow.grid import Grid
from envs.powerflow.jacobian_pattern import JacobianStructure

# float32 cannot resolve mismatches much below this on 100+ bus cases (p.u.; 0.01 MW at 100 MVA).
FLOAT32_MIN_TOL = 1e-4
Q_LIMIT_TOL_MVAR = 1e-3


class ACFlow(NamedTuple):
    vm: jnp.ndarray  # [..., N] p.u. (0 on dead buses)
    va: jnp.ndarray  # [..., N] rad (0 on dead buses)
    p_from_mw: jnp.ndarray  # [..., L]
    q_from_mvar: jnp.ndarray  # [..., L]
    p_to_mw: jnp.ndarray  # [..., L]
    q_to_mvar: jnp.ndarray  # [..., L]
    converged: jnp.ndarray  # [...] bool
    iterations: jnp.ndarray  # [...] int32 Newton steps taken
    mismatch: jnp.ndarray  # [...] max |power mismatch| p.u. over energised buses
    qg_bus_mvar: jnp.ndarray  # [..., N] reactive generation needed at PV/ref buses (0 at PQ)
    q_limit_violated: jnp.ndarray  # [...] bool: some PV/ref bus outside its gens' Q range
    p_injection_mw: jnp.ndarray  # [..., N] solved net active injection (slack's included)
    q_injection_mvar: jnp.ndarray  # [..., N] solved net reactive injection


class BranchAdmittance(NamedTuple):
    """MATPOWER's per-branch 2x2 admittance entries (complex) [L]."""

    yff: jnp.ndarray
    yft: jnp.ndarray
    ytf: jnp.ndarray
    ytt: jnp.ndarray


def branch_admittance(grid: Grid) -> BranchAdmittance:
    dtype = jnp.result_type(grid.branch_r.dtype, jnp.complex64)
    series = 1.0 / (grid.branch_r + 1j * grid.branch_x).astype(dtype)
    charging = 0.5j * grid.branch_b.astype(dtype)
    tap = grid.branch_tap * jnp.exp(1j * grid.branch_shift.astype(dtype))
    ytt = series + charging
    return BranchAdmittance(
        yff=ytt / (tap * jnp.conj(tap)), yft=-series / jnp.conj(tap), ytf=-series / tap, ytt=ytt
    )


# ----------------------------------------------------------------------------
# Numeric kernels, arrays laid out [entries, batch].
# ----------------------------------------------------------------------------


def _ybus_values(grid: Grid, live_branch_t) -> jnp.ndarray:
    """Ybus entry values [E, B] (or [E, 1] when shared) in the structure's order."""
    st, y = grid.ac_jacobian, branch_admittance(grid)
    n_entries = st.y_row.shape[0]
    weight = jnp.ones((grid.n_branch, 1), y.yff.dtype) if live_branch_t is None else live_branch_t
    weight = weight.astype(y.yff.dtype)
    values = jnp.zeros((n_entries, weight.shape[1]), y.yff.dtype)
    for part, admittance in enumerate(y):
        values = values.at[st.y_branch[part]].add(admittance[:, None] * weight)
    shunt = (grid.bus_gs + 1j * grid.bus_bs).astype(y.yff.dtype) / grid.base_mva
    return values.at[st.y_diag].add(jnp.broadcast_to(shunt[:, None], (len(shunt), weight.shape[1])))


def _bus_current(st: JacobianStructure, y_values, voltage) -> jnp.ndarray:
    """I = Ybus V, [N, B]."""
    terms = y_values * voltage[st.y_col]
    n_bus = st.y_diag.shape[0]
    return jax.ops.segment_sum(terms, st.y_row, num_segments=n_bus, indices_are_sorted=True)


def _mismatch(st, y_values, voltage, s_spec, live):
    current = _bus_current(st, y_values, voltage)
    diff = jnp.where(live, voltage * jnp.conj(current) - s_spec, 0.0)
    at_var = diff[st.var_bus]
    return jnp.where(st.var_is_vm[:, None], at_var.imag, at_var.real), current


def _jacobian_values(st, y_values, voltage, current, live) -> jnp.ndarray:
    """LU-pattern values [S + 1, B] of MATPOWER's polar Jacobian (last row: scratch)."""
    v_row, v_col, i_row = voltage[st.y_row], voltage[st.y_col], current[st.y_row]
    diag = st.y_is_diag[:, None]
    unit = lambda v: v / jnp.maximum(jnp.abs(v), 1e-12)  # noqa: E731
    ds_dva = -1j * v_row * jnp.conj(y_values * v_col)
    ds_dva = ds_dva + jnp.where(diag, 1j * v_row * jnp.conj(i_row), 0.0)
    ds_dvm = v_row * jnp.conj(y_values * unit(v_col))
    ds_dvm = ds_dvm + jnp.where(diag, jnp.conj(i_row) * unit(v_row), 0.0)
    zero = jnp.zeros((1, voltage.shape[1]), ds_dva.real.dtype)
    candidates = jnp.concatenate([ds_dva.real, ds_dvm.real, ds_dva.imag, ds_dvm.imag, zero])
    values = candidates[st.lu_source]
    row_live, col_live = live[st.lu_row_bus], live[st.lu_col_bus]
    values = jnp.where(row_live & col_live, values, 0.0)
    values = values + (st.lu_is_diag[:, None] & ~row_live).astype(values.dtype)
    return jnp.concatenate([values, zero])


def _lu_factor(st: JacobianStructure, values) -> jnp.ndarray:
    """In-place LU (unit lower L below the diagonal, U on and above) of [S + 1, B] values."""
    width = st.pivot_rows.shape[1]

    def eliminate(values, step):
        diag, lower, upper, update = step
        column = values[lower] / values[diag][None]
        values = values.at[lower].set(column)
        row = values[upper]
        product = (column[:, None, :] * row[None, :, :]).reshape(width * width, -1)
        values = values.at[update].add(-product)
        return values.at[-1].set(0.0), None

    steps = (st.pivot_diag, st.pivot_lower, st.pivot_upper, st.pivot_update)
    values, _ = jax.lax.scan(eliminate, values, steps)
    return values


def _lu_solve(st: JacobianStructure, factors, rhs) -> jnp.ndarray:
    """Solves (LU) x = rhs for rhs [M, B] with the factors of :func:`_lu_factor`."""
    n_var = rhs.shape[0]
    padded = jnp.concatenate([rhs, jnp.zeros_like(rhs[:1])])  # row M: padding target

    def forward(y, step):
        k, rows, lower = step
        y = y.at[rows].add(-factors[lower] * y[k][None])
        return y.at[n_var].set(0.0), None

    def backward(x, step):
        k, rows, upper, diag = step
        solved = (x[k] - jnp.sum(factors[upper] * x[rows], axis=0)) / factors[diag]
        return x.at[k].set(solved), None

    index = jnp.arange(n_var)
    y, _ = jax.lax.scan(forward, padded, (index, st.pivot_rows, st.pivot_lower))
    steps = (index, st.pivot_rows, st.pivot_upper, st.pivot_diag)
    x, _ = jax.lax.scan(backward, y, steps, reverse=True)
    return x[:n_var]


class _State(NamedTuple):
    va: jnp.ndarray  # [N, B]
    vm: jnp.ndarray  # [N, B]
    iterations: jnp.ndarray  # [B]
    mismatch: jnp.ndarray  # [B]
    done: jnp.ndarray  # [B]
    step: jnp.ndarray  # []


def _newton(grid, y_values, s_spec, va0, vm0, live, max_iter, tol) -> _State:
    st = grid.ac_jacobian
    to_voltage = lambda va, vm: (vm * jnp.exp(1j * va)).astype(y_values.dtype)  # noqa: E731

    def body(state: _State) -> _State:
        voltage = to_voltage(state.va, state.vm)
        f, current = _mismatch(st, y_values, voltage, s_spec, live)
        factors = _lu_factor(st, _jacobian_values(st, y_values, voltage, current, live))
        dx = -_lu_solve(st, factors, f)
        zero = jnp.zeros_like(state.va)
        va = state.va + zero.at[st.var_bus].add(jnp.where(st.var_is_vm[:, None], 0.0, dx))
        vm = state.vm + zero.at[st.var_bus].add(jnp.where(st.var_is_vm[:, None], dx, 0.0))
        f_new, _ = _mismatch(st, y_values, to_voltage(va, vm), s_spec, live)
        mismatch = jnp.max(jnp.abs(f_new), axis=0, initial=0.0)
        ok = jnp.isfinite(mismatch) & jnp.all(jnp.isfinite(va) & jnp.isfinite(vm), axis=0)
        active = ~state.done
        accept = active & ok
        return _State(
            va=jnp.where(accept[None], va, state.va),
            vm=jnp.where(accept[None], vm, state.vm),
            iterations=state.iterations + active.astype(jnp.int32),
            mismatch=jnp.where(accept, mismatch, state.mismatch),
            done=state.done | ~ok | (mismatch < tol),
            step=state.step + 1,
        )

    def keep_going(state: _State):
        return (state.step < max_iter) & ~jnp.all(state.done)

    f0, _ = _mismatch(st, y_values, to_voltage(va0, vm0), s_spec, live)
    mismatch0 = jnp.max(jnp.abs(f0), axis=0, initial=0.0)
    start = _State(
        va=va0,
        vm=vm0,
        iterations=jnp.zeros(mismatch0.shape, jnp.int32),
        mismatch=mismatch0,
        done=mismatch0 < tol,
        step=jnp.zeros((), jnp.int32),
    )
    return jax.lax.while_loop(keep_going, body, start)


def ac_power_flow(
    grid: Grid,
    p_bus_mw: jnp.ndarray,
    q_bus_mvar: jnp.ndarray,
    vm_set: jnp.ndarray,
    branch_in_service: jnp.ndarray | None = None,
    max_iter: int = 20,
    tol: float = 1e-8,
) -> ACFlow:
    """Newton–Raphson AC power flow for a batch of grids.

    Args:
      p_bus_mw, q_bus_mvar: [..., N] net injection (generation - load). At PV and
        slack buses the reactive value (and at the slack the active value) is an
        output: pass the load there (-Qd); the generators' share is solved for.
      vm_set: [..., N] voltage magnitude: the setpoint at PV/slack buses and the
        starting value at PQ buses (``grid.bus_vm_set`` gives MATPOWER's).
      branch_in_service: [..., L] bool or None (all in service).
      max_iter, tol: may be static or traced; tol is the max |mismatch| in p.u. (raised to
        FLOAT32_MIN_TOL in float32).
    """
    shapes = [p_bus_mw.shape, q_bus_mvar.shape, vm_set.shape]
    if branch_in_service is not None:
        shapes.append((*branch_in_service.shape[:-1], grid.n_bus))
    batch = jnp.broadcast_shapes(*shapes)[:-1]
    size = int(np.prod(batch, dtype=np.int64))
    dtype = jnp.result_type(p_bus_mw.dtype, grid.branch_r.dtype)
    columns = lambda x, n: jnp.broadcast_to(x, (*batch, n)).reshape(size, n).T  # noqa: E731
    if branch_in_service is None:
        in_service = jnp.ones((grid.n_branch, size), dtype=bool)
        live = jnp.broadcast_to(grid.bus_energised0[:, None], (grid.n_bus, size))
    else:
        in_service = columns(branch_in_service, grid.n_branch)
        live = energised_buses(grid, in_service.T).T
    live_branch = in_service & live[grid.branch_from]
    masked = None if branch_in_service is None else live_branch
    y_values = _ybus_values(grid, masked)
    s_spec = (columns(p_bus_mw, grid.n_bus) + 1j * columns(q_bus_mvar, grid.n_bus)) / grid.base_mva
    va0 = columns(grid.bus_va0.astype(dtype), grid.n_bus)
    vm0 = columns(vm_set.astype(dtype), grid.n_bus)
    if jnp.finfo(dtype).bits < 64:
        tol = jnp.maximum(tol, FLOAT32_MIN_TOL)  # works for a traced tol too
    state = _newton(grid, y_values, s_spec.astype(y_values.dtype), va0, vm0, live, max_iter, tol)
    q_bus = columns(q_bus_mvar, grid.n_bus)
    flow = _solution(grid, y_values, state, live, live_branch, q_bus, tol)
    unbatch = lambda x: x.T.reshape(*batch, *x.shape[:-1])  # noqa: E731
    return ACFlow(*(unbatch(field) for field in flow))


def _solution(grid, y_values, state: _State, live, live_branch, q_bus_mvar, tol) -> ACFlow:
    """Voltages, flows and reactive generation, all [rows, B] (transposed by the caller)."""
    st = grid.ac_jacobian
    vm = jnp.where(live, state.vm, 0.0)
    va = jnp.where(live, state.va, 0.0)
    voltage = (vm * jnp.exp(1j * va)).astype(y_values.dtype)
    s_bus = voltage * jnp.conj(_bus_current(st, y_values, voltage)) * grid.base_mva
    y = branch_admittance(grid)
    v_from, v_to = voltage[grid.branch_from], voltage[grid.branch_to]
    i_from = y.yff[:, None] * v_from + y.yft[:, None] * v_to
    i_to = y.ytf[:, None] * v_from + y.ytt[:, None] * v_to
    s_from = jnp.where(live_branch, v_from * jnp.conj(i_from), 0.0) * grid.base_mva
    s_to = jnp.where(live_branch, v_to * jnp.conj(i_to), 0.0) * grid.base_mva
    voltage_controlled = (grid.bus_type != 1)[:, None] & live
    qg_bus = jnp.where(voltage_controlled, s_bus.imag - q_bus_mvar, 0.0)
    q_max = (grid.gen_to_bus @ grid.gen_qmax)[:, None]
    q_min = (grid.gen_to_bus @ grid.gen_qmin)[:, None]
    outside = (qg_bus > q_max + Q_LIMIT_TOL_MVAR) | (qg_bus < q_min - Q_LIMIT_TOL_MVAR)
    return ACFlow(
        vm=vm,
        va=va,
        p_from_mw=s_from.real,
        q_from_mvar=s_from.imag,
        p_to_mw=s_to.real,
        q_to_mvar=s_to.imag,
        converged=state.mismatch < tol,
        iterations=state.iterations,
        mismatch=state.mismatch,
        qg_bus_mvar=qg_bus,
        q_limit_violated=jnp.any(outside & voltage_controlled, axis=0),
        p_injection_mw=s_bus.real,
        q_injection_mvar=s_bus.imag,
    )
