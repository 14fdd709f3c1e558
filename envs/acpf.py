"""AC power flow in JAX: Newton–Raphson in polar coordinates, batched.

Follows MATPOWER's ``makeYbus``/``newtonpf``/``pfsoln``: unknowns are the voltage
angles of PV and PQ buses and the magnitudes of PQ buses; the Jacobian is
formed densely from ``dS/dVa`` and ``dS/dVm``. Every grid of a batch iterates
until its own mismatch is below ``tol`` (then it is frozen) or ``max_iter`` is
reached. Reactive limits are reported, not enforced (no PV→PQ switching).

Per-grid branch outages rebuild the admittance matrix from the mask. Buses cut
off from the slack are left out of the equations and reported with zero
voltage; flows on dead or outaged branches are zero.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax import numpy as jnp

from envs.dcpf import energised_buses
from envs.grid import Grid, lift

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


def bus_admittance(grid: Grid, branch_live: jnp.ndarray) -> jnp.ndarray:
    """Ybus [..., N, N] (complex, p.u.) with branches weighted by ``branch_live`` [..., L]."""
    y = branch_admittance(grid)
    nd = branch_live.ndim
    live = branch_live.astype(y.yff.dtype)
    f, t = grid.branch_from, grid.branch_to
    shape = (*branch_live.shape[:-1], grid.n_bus, grid.n_bus)
    ybus = jnp.zeros(shape, dtype=y.yff.dtype)
    ybus = ybus.at[..., f, f].add(live * lift(y.yff, nd))
    ybus = ybus.at[..., f, t].add(live * lift(y.yft, nd))
    ybus = ybus.at[..., t, f].add(live * lift(y.ytf, nd))
    ybus = ybus.at[..., t, t].add(live * lift(y.ytt, nd))
    shunt = (grid.bus_gs + 1j * grid.bus_bs) / grid.base_mva
    return ybus + lift(jnp.diag(shunt.astype(y.yff.dtype)), nd + 1)


def _unknown_indices(grid: Grid):
    pvpq = np.array(sorted(grid.pv_buses + grid.pq_buses), dtype=np.int32)
    pq = np.array(grid.pq_buses, dtype=np.int32)
    return pvpq, pq


def _ybus_times(ybus, voltage):
    """Ybus @ V per grid; a shared [N, N] Ybus becomes one matmul for the whole batch."""
    if ybus.ndim == 2:
        return jnp.matmul(voltage, ybus.T)
    return jnp.einsum("...nk,...k->...n", ybus, voltage)


def _mismatch(ybus, voltage, s_spec, live_bus, pvpq, pq):
    current = _ybus_times(ybus, voltage)
    s_calc = voltage * jnp.conj(current)
    diff = jnp.where(live_bus, s_calc - s_spec, 0.0)
    return jnp.concatenate([diff[..., pvpq].real, diff[..., pq].imag], axis=-1), current


def _jacobian(ybus, voltage, current, live_bus, pvpq, pq):
    """Dense Newton Jacobian [..., M, M] from MATPOWER's dSbus_dV (polar)."""
    n = voltage.shape[-1]
    eye = lift(jnp.eye(n, dtype=voltage.dtype), voltage.ndim + 1)
    ybus = lift(ybus, voltage.ndim + 1)
    v_row = voltage[..., :, None]
    v_col = voltage[..., None, :]
    v_norm = voltage / jnp.maximum(jnp.abs(voltage), 1e-12)
    ds_dva = 1j * v_row * jnp.conj(eye * current[..., :, None] - ybus * v_col)
    ds_dvm = (
        v_row * jnp.conj(ybus * v_norm[..., None, :])
        + eye * (jnp.conj(current) * v_norm)[..., :, None]
    )
    top = jnp.concatenate(
        [ds_dva[..., pvpq[:, None], pvpq].real, ds_dvm[..., pvpq[:, None], pq].real], axis=-1
    )
    bottom = jnp.concatenate(
        [ds_dva[..., pq[:, None], pvpq].imag, ds_dvm[..., pq[:, None], pq].imag], axis=-1
    )
    jac = jnp.concatenate([top, bottom], axis=-2)
    # Dead buses: identity rows/columns keep the system regular and their step zero.
    live = jnp.concatenate([live_bus[..., pvpq], live_bus[..., pq]], axis=-1)
    both = live[..., :, None] & live[..., None, :]
    m = jac.shape[-1]
    identity = lift(jnp.eye(m, dtype=jac.dtype), live.ndim + 1)
    return jnp.where(both, jac, 0.0) + identity * (~live)[..., :, None]


class _State(NamedTuple):
    va: jnp.ndarray
    vm: jnp.ndarray
    iterations: jnp.ndarray
    mismatch: jnp.ndarray
    done: jnp.ndarray
    step: jnp.ndarray


def _newton(grid, ybus, s_spec, va0, vm0, live_bus, max_iter, tol) -> _State:
    pvpq, pq = _unknown_indices(grid)
    n_pvpq = len(pvpq)

    def evaluate(va, vm):
        voltage = (vm * jnp.exp(1j * va)).astype(ybus.dtype)
        f, current = _mismatch(ybus, voltage, s_spec, live_bus, pvpq, pq)
        return voltage, f, current

    def body(state: _State) -> _State:
        voltage, f, current = evaluate(state.va, state.vm)
        jac = _jacobian(ybus, voltage, current, live_bus, pvpq, pq)
        dx = -jnp.linalg.solve(jac, f[..., None])[..., 0]
        va = state.va.at[..., pvpq].add(dx[..., :n_pvpq])
        vm = state.vm.at[..., pq].add(dx[..., n_pvpq:])
        _, f_new, _ = evaluate(va, vm)
        mismatch = jnp.max(jnp.abs(f_new), axis=-1)
        ok = jnp.isfinite(mismatch) & jnp.all(jnp.isfinite(va) & jnp.isfinite(vm), axis=-1)
        active = ~state.done
        accept = (active & ok)[..., None]
        return _State(
            va=jnp.where(accept, va, state.va),
            vm=jnp.where(accept, vm, state.vm),
            iterations=state.iterations + active.astype(jnp.int32),
            mismatch=jnp.where(active & ok, mismatch, state.mismatch),
            done=state.done | ~ok | (mismatch < tol),
            step=state.step + 1,
        )

    def keep_going(state: _State):
        return (state.step < max_iter) & ~jnp.all(state.done)

    _, f0, _ = evaluate(va0, vm0)
    mismatch0 = jnp.max(jnp.abs(f0), axis=-1)
    batch = mismatch0.shape
    start = _State(
        va=va0,
        vm=vm0,
        iterations=jnp.zeros(batch, jnp.int32),
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
      tol: max |mismatch| in p.u.; in float32 it is raised to FLOAT32_MIN_TOL.
    """
    batch = jnp.broadcast_shapes(p_bus_mw.shape, q_bus_mvar.shape, vm_set.shape)[:-1]
    dtype = jnp.result_type(p_bus_mw.dtype, grid.branch_r.dtype)
    if branch_in_service is None:
        in_service = jnp.ones((*batch, grid.n_branch), dtype=bool)
        live_bus = jnp.broadcast_to(grid.bus_energised0, (*batch, grid.n_bus))
    else:
        in_service = jnp.broadcast_to(branch_in_service, (*batch, grid.n_branch))
        live_bus = energised_buses(grid, in_service)
    live_branch = in_service & live_bus[..., grid.branch_from]
    if branch_in_service is None:
        ybus = bus_admittance(grid, jnp.ones(grid.n_branch, bool))  # shared [N, N]
    else:
        ybus = bus_admittance(grid, live_branch)
    s_spec = (p_bus_mw + 1j * q_bus_mvar) / grid.base_mva
    s_spec = jnp.broadcast_to(s_spec, (*batch, grid.n_bus)).astype(ybus.dtype)
    va0 = jnp.broadcast_to(grid.bus_va0, (*batch, grid.n_bus)).astype(dtype)
    vm0 = jnp.broadcast_to(vm_set, (*batch, grid.n_bus)).astype(dtype)
    if jnp.finfo(dtype).bits < 64:
        tol = max(tol, FLOAT32_MIN_TOL)
    state = _newton(grid, ybus, s_spec, va0, vm0, live_bus, max_iter, tol)
    q_bus = jnp.broadcast_to(q_bus_mvar, (*batch, grid.n_bus))
    return _solution(grid, ybus, state, live_bus, live_branch, q_bus, tol)


def _solution(grid, ybus, state: _State, live_bus, live_branch, q_bus_mvar, tol) -> ACFlow:
    nd = live_bus.ndim
    vm = jnp.where(live_bus, state.vm, 0.0)
    va = jnp.where(live_bus, state.va, 0.0)
    voltage = (vm * jnp.exp(1j * va)).astype(ybus.dtype)
    s_bus = voltage * jnp.conj(_ybus_times(ybus, voltage)) * grid.base_mva
    y = branch_admittance(grid)
    v_from, v_to = voltage[..., grid.branch_from], voltage[..., grid.branch_to]
    i_from = lift(y.yff, nd) * v_from + lift(y.yft, nd) * v_to
    i_to = lift(y.ytf, nd) * v_from + lift(y.ytt, nd) * v_to
    s_from = jnp.where(live_branch, v_from * jnp.conj(i_from), 0.0) * grid.base_mva
    s_to = jnp.where(live_branch, v_to * jnp.conj(i_to), 0.0) * grid.base_mva
    voltage_controlled = lift(grid.bus_type != 1, nd) & live_bus
    qg_bus = jnp.where(voltage_controlled, s_bus.imag - q_bus_mvar, 0.0)
    q_max = lift(grid.gen_to_bus @ grid.gen_qmax, nd)
    q_min = lift(grid.gen_to_bus @ grid.gen_qmin, nd)
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
        q_limit_violated=jnp.any(outside & voltage_controlled, axis=-1),
        p_injection_mw=s_bus.real,
        q_injection_mvar=s_bus.imag,
    )
