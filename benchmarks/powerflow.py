"""Power-flow throughput: gridpod (batched JAX) against PYPOWER, pandapower, lightsim2grid.

    python -m benchmarks.powerflow                 # batches 1, 4, ..., 16384
    python -m benchmarks.powerflow --quick         # small batches, short timings
    python -m benchmarks.powerflow --max_batch=1024 --cases=ieee118 --modes=ac

Every grid of a batch gets its own load level (uniform 0.8-1.1 × base, dispatch
scaled with it). The peers solve one case per call (that is how they are used
from Python); they are timed in the same process on the same machine. Peers
that are not installed are reported as such. Rates are solves per second; for
AC only converged solves count. "per CPU-second" divides by the CPU time this
process used (all its threads), which shows efficiency on a shared machine.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from absl import app, flags

from benchmarks.harness import cpu_model, define_once
from envs.powerflow.case import SHIPPED_CASES, load_case

_CASES = define_once(flags.DEFINE_list, "cases", ["ieee14", "ieee118"], "shipped cases to measure")
_MODES = define_once(
    flags.DEFINE_list,
    "modes",
    ["dc", "dc_flows", "dc_k2", "ac"],
    "dc (all DCFlow outputs), dc_flows (branch flows only, as an env uses them), "
    "dc_k2 (2 outages per grid), dc_mask (dense outage masks), ac",
)
_MAX_BATCH = define_once(
    flags.DEFINE_integer, "max_batch", 16384, "largest batch (powers of 4 up to it)"
)
_QUICK = define_once(flags.DEFINE_bool, "quick", False, "batches up to 64 and short timing windows")
_X64 = define_once(flags.DEFINE_bool, "x64", False, "measure gridpod in float64 instead of float32")
_MIN_TIME = define_once(
    flags.DEFINE_float, "min_time", 1.0, "seconds each measurement runs for at least"
)

# Dense per-grid matrices make these paths memory-bound beyond this batch size.
MAX_BATCH_BY_MODE = {"dc_mask": 1024, "ac": 16384}


def rate(call, items_per_call: int, min_time: float) -> float:
    """Items per wall-clock second of ``call`` (already warmed up), timed >= ``min_time``."""
    return rates(call, items_per_call, min_time)[0]


def rates(call, items_per_call: int, min_time: float) -> tuple[float, float]:
    """(items per wall-clock second, items per CPU-second of this process)."""
    calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            cpu = max(time.process_time() - cpu_start, 1e-9)
            return calls * items_per_call / elapsed, calls * items_per_call / cpu


class GridpodSolver:
    """Jitted batched solvers for one case, with per-grid load levels."""

    def __init__(self, case_name: str, x64: bool):
        import jax
        from jax import numpy as jnp

        from envs.powerflow.acpf import ac_power_flow
        from envs.powerflow.case import load_case
        from envs.powerflow.dc_outages import dc_flow
        from envs.powerflow.dcpf import dc_power_flow
        from envs.powerflow.grid import build_grid

        self.jax, self.jnp = jax, jnp
        self.grid = build_grid(load_case(case_name), jnp.float64 if x64 else jnp.float32)
        self.dc = jax.jit(dc_power_flow)
        self.dc_flows = jax.jit(lambda grid, p: dc_power_flow(grid, p).flow_mw)
        # The environment's low-rank outage path, one grid at a time under vmap.
        self.dc_outages = jax.jit(jax.vmap(dc_flow, in_axes=(None, 0, 0)))
        self.ac = jax.jit(ac_power_flow, static_argnames=("max_iter", "tol"))

    def inputs(self, batch: int, seed: int = 0):
        jnp, grid = self.jnp, self.grid
        rng = np.random.default_rng(seed)
        level = jnp.asarray(rng.uniform(0.8, 1.1, (batch, 1)), grid.bus_pd.dtype)
        p = level * (grid.gen_to_bus @ grid.gen_pg0 - grid.bus_pd)[None]
        q_gen = jnp.where(grid.bus_type == 1, grid.gen_to_bus @ grid.gen_qg0, 0.0)
        q = level * (q_gen - grid.bus_qd)[None]
        vm = jnp.broadcast_to(grid.bus_vm_set, p.shape)
        candidates = np.flatnonzero(~np.asarray(grid.branch_is_bridge))
        outages = rng.choice(candidates, size=(batch, 2)).astype(np.int32)
        mask = np.ones((batch, grid.n_branch), dtype=bool)
        np.put_along_axis(mask, outages, False, axis=1)
        return p, q, vm, jnp.asarray(mask)

    def call(self, mode: str, batch: int):
        """Returns (warmed-up zero-argument call, fraction of grids solved)."""
        p, q, vm, mask = self.inputs(batch)
        block = self.jax.block_until_ready
        if mode == "dc":
            fn = lambda: block(self.dc(self.grid, p).flow_mw)  # noqa: E731
        elif mode == "dc_flows":
            fn = lambda: block(self.dc_flows(self.grid, p))  # noqa: E731
        elif mode == "dc_k2":
            fn = lambda: block(self.dc_outages(self.grid, p, mask).flow_mw)  # noqa: E731
        elif mode == "dc_mask":
            fn = lambda: block(self.dc(self.grid, p, mask).flow_mw)  # noqa: E731
        else:
            result = self.ac(self.grid, p, q, vm)
            solved = float(np.mean(np.asarray(result.converged)))
            return (lambda: block(self.ac(self.grid, p, q, vm).vm)), solved
        fn()
        return fn, 1.0


def peer_rates(case_name: str, modes: list[str], min_time: float) -> dict:
    """{peer: {"dc": rate, "ac": rate} or a string saying why not}, one case per call."""
    ppc = load_case(case_name).to_ppc()
    peers = {}
    inputs = {"PYPOWER": ppc, "pandapower": case_name, "lightsim2grid": case_name}
    for name, measure in (
        ("PYPOWER", _pypower_rates),
        ("pandapower", _pandapower_rates),
        ("lightsim2grid", _lightsim_rates),
    ):
        try:
            peers[name] = measure(inputs[name], modes, min_time)
        except ImportError:
            peers[name] = "not installed"
    return peers


def _pypower_rates(ppc, modes, min_time):
    from pypower.api import ppoption, rundcpf, runpf

    options = ppoption(VERBOSE=0, OUT_ALL=0, ENFORCE_Q_LIMS=0)
    out = {}
    if any(m.startswith("dc") for m in modes):
        out["dc"] = rate(lambda: rundcpf(ppc, options), 1, min_time)
    if "ac" in modes:
        out["ac"] = rate(lambda: runpf(ppc, options), 1, min_time)
    return out


def _pandapower_net(case_name: str):
    """pandapower's own copy of the MATPOWER case (pandapower.networks.caseNN)."""
    import warnings

    import pandapower.networks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(pandapower.networks, SHIPPED_CASES[case_name])()


def _pandapower_rates(case_name, modes, min_time):
    import pandapower

    net = _pandapower_net(case_name)
    out = {}
    if any(m.startswith("dc") for m in modes):
        out["dc"] = rate(lambda: pandapower.rundcpp(net), 1, min_time)
    if "ac" in modes:
        out["ac"] = rate(lambda: pandapower.runpp(net, numba=False), 1, min_time)
    return out


def _lightsim_rates(case_name, modes, min_time):
    import warnings

    import pandapower
    from lightsim2grid.gridmodel import init_from_pandapower

    net = _pandapower_net(case_name)
    pandapower.runpp(net, numba=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = init_from_pandapower(net)
    v0 = np.ones(len(net.bus), dtype=complex)
    out = {}
    if any(m.startswith("dc") for m in modes):
        out["dc"] = rate(lambda: model.dc_pf(v0, 10, 1e-8), 1, min_time)
    if "ac" in modes:
        out["ac"] = rate(lambda: model.ac_pf(v0, 10, 1e-8), 1, min_time)
    return out


def hardware() -> str:
    import jax

    device = jax.devices()[0]
    return (
        f"{cpu_model()}, {os.cpu_count()} logical CPUs; jax {jax.__version__} backend "
        f"{jax.default_backend()} ({device.device_kind}, {len(jax.devices())} device(s))"
    )


def _format_rate(value) -> str:
    return value if isinstance(value, str) else f"{value:,.0f}"


def _ratio(ours: float, peer) -> str:
    return "-" if isinstance(peer, str) or peer is None else f"{ours / peer:,.1f}x"


def run_case(case_name: str, modes, batches, min_time, x64) -> list[str]:
    solver = GridpodSolver(case_name, x64)
    peers = peer_rates(case_name, modes, min_time)
    names = list(peers)
    lines = [f"## {case_name}", ""]
    for name in names:
        lines.append(f"- {name} (one case per call): " + _peer_summary(peers[name]))
    header = "| mode | batch | gridpod solves/s | per CPU-second | "
    lines += ["", header + " | ".join(f"vs {n}" for n in names) + " |"]
    lines.append("|---" * (4 + len(names)) + "|")
    for mode in modes:
        peer_mode = "ac" if mode == "ac" else "dc"
        for batch in batches:
            if batch > MAX_BATCH_BY_MODE.get(mode, batch):
                continue
            call, solved = solver.call(mode, batch)
            wall, per_cpu = rates(call, batch, min_time)
            ours, per_cpu = wall * solved, per_cpu * solved
            ratios = [_ratio(ours, _peer_value(peers[n], peer_mode)) for n in names]
            row = (
                f"| {mode} | {batch} | {ours:,.0f} | {per_cpu:,.0f} | " + " | ".join(ratios) + " |"
            )
            lines.append(row)
            print(row, file=sys.stderr, flush=True)
    return lines


def _peer_value(peer, mode):
    return peer if isinstance(peer, str) else peer.get(mode)


def _peer_summary(peer) -> str:
    if isinstance(peer, str):
        return peer
    return ", ".join(f"{mode.upper()} {_format_rate(value)}/s" for mode, value in peer.items())


def main(argv) -> None:
    del argv
    import jax

    jax.config.update("jax_enable_x64", _X64.value)
    max_batch = min(_MAX_BATCH.value, 64) if _QUICK.value else _MAX_BATCH.value
    min_time = min(_MIN_TIME.value, 0.2) if _QUICK.value else _MIN_TIME.value
    batches = [4**k for k in range(0, 10) if 4**k <= max_batch]
    print(f"# Power flow throughput\n\nhardware: {hardware()}")
    print(f"dtype: {'float64' if _X64.value else 'float32'}\n", flush=True)
    for case_name in _CASES.value:
        lines = run_case(case_name, _MODES.value, batches, min_time, _X64.value)
        print("\n".join(lines) + "\n", flush=True)


if __name__ == "__main__":
    app.run(main)
