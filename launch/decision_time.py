"""How long a trained policy takes to decide, beside one solve of the OPF an operator runs.

Per grid and batch size, on the evaluation's device:

* ``network``: the policy's forward pass (deterministic mode);
* ``decision``: what the env applies per step, the forward pass and the action interface
  (with bids, the clearing QP of ``envs.opf.step_qp``);
* ``myopic_opf``: one single-step DC-OPF solve of the same states (``envs.opf.step_qp``).

Wall clock of jitted calls after a warm-up call (compilation excluded), the median of
``repeats``, in microseconds per grid. A policy on bids cannot decide faster than the clearing it
bids into; the network column is what a policy without a QP in its loop would cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import jax
import numpy as np

from envs.opf import step_qp

DEFAULT_BATCHES = (1, 1024)


def _median_seconds(fn: Callable, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def decision_times(
    env,
    env_params,
    network: Callable,
    act: Callable,
    policy_args,
    batches: Sequence[int] = DEFAULT_BATCHES,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """``{str(batch): {"network_us", "decision_us", "myopic_opf_us"}}`` per grid.

    ``network(obs, args) -> action`` is the forward pass, ``act(obs, state, key, args)`` the
    evaluation's ``ActFn`` (the action as the setpoints the env applies)."""
    times = compared_decision_times(
        env, env_params, {"policy": (network, act, policy_args)}, batches, repeats, seed
    )
    return times["policy"]


def compared_decision_times(
    env,
    env_params,
    policies: dict[str, tuple[Callable, Callable, object]],
    batches: Sequence[int] = DEFAULT_BATCHES,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """``decision_times`` of several policies ``{name: (network, act, args)}`` on the same
    states, beside one OPF solve compiled and timed once per batch:
    ``{name: {str(batch): {"network_us", "decision_us", "myopic_opf_us"}}}``."""
    if not batches or any(int(b) < 1 for b in batches):
        raise ValueError(f"decision-time batches must be positive integers, got {tuple(batches)}")
    reset = jax.jit(lambda keys: jax.vmap(env.reset, in_axes=(0, None))(keys, env_params))
    solve = jax.jit(
        lambda state: jax.vmap(step_qp.solve_myopic_opf, in_axes=(0, None))(state, env_params)
    )
    compiled = {
        name: (
            jax.jit(network),
            jax.jit(lambda obs, state, args, act=act: act(obs, state, None, args)),
            args,
        )
        for name, (network, act, args) in policies.items()
    }
    results = {name: {} for name in policies}
    for batch in batches:
        keys = jax.random.split(jax.random.key(seed), int(batch))
        obs, state = reset(keys)
        per_grid = 1e6 / int(batch)
        opf = per_grid * _median_seconds(solve, state, repeats=repeats)
        for name, (forward, decide, args) in compiled.items():
            results[name][str(int(batch))] = {
                "network_us": per_grid * _median_seconds(forward, obs, args, repeats=repeats),
                "decision_us": per_grid
                * _median_seconds(decide, obs, state, args, repeats=repeats),
                "myopic_opf_us": opf,
            }
    return results


def format_decision_times(times: dict[str, dict[str, float]]) -> str:
    lines = [
        "decision time per grid (us)",
        f"{'batch':>7}{'network':>12}{'decision':>12}{'myopic OPF':>12}",
    ]
    for batch, row in times.items():
        cells = "".join(f"{row[k]:>12.1f}" for k in ("network_us", "decision_us", "myopic_opf_us"))
        lines.append(f"{batch:>7}{cells}")
    return "\n".join(lines)
