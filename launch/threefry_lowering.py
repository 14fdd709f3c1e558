"""Threefry random bits as straight-line code on XLA:CPU (the same numbers, fewer ops).

JAX lowers its threefry2x32 hash on CPU as a ``while`` loop over the five rotation rounds to
keep compile times short (on GPU it is unrolled). XLA:CPU runs such a loop op by op: every
``jax.random`` call in a step becomes dozens of small kernels, and an environment step
draws random numbers in several places (weather, failures, the auto-reset's episode, the
policy's actions). Registering JAX's own unrolled lowering for CPU lets XLA fuse each draw
into one elementwise kernel. Results are bit-identical (same algorithm; tested).

Measured in benchmarks/README.md ("Environment throughput", "Threefry unrolled on XLA:CPU").

A process-wide switch, so only launchers and benchmarks call it (process settings
belong to launchers). It reaches into JAX's private lowering table; if a JAX version moves it,
the switch does nothing and logs why (INFO).
"""

from __future__ import annotations

import logging


def unroll_threefry_on_cpu() -> bool:
    """Use the unrolled threefry lowering on CPU in this process (from its next compile on);
    True if it took effect. Idempotent."""
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as threefry
    except ImportError as err:
        logging.getLogger(__name__).info("threefry stays rolled on CPU (%s)", err)
        return False
    rule = getattr(threefry, "_threefry2x32_lowering_rule", None)
    primitive = getattr(threefry, "threefry2x32_p", None)
    if rule is None or primitive is None:
        logging.getLogger(__name__).info("threefry stays rolled on CPU (JAX moved its rule)")
        return False
    mlir.register_lowering(primitive, rule, platform="cpu")
    return True
