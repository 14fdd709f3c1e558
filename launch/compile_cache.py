"""What the persistent compilation cache did for a run: programs loaded from it and compiled anew.

Each process of a run counts its own compiles from JAX's monitoring events (``count_compiles``
installs the listeners once per process); the supervisor sums the nodes' counts into the run's
summary (``summary.json`` under ``"compilation_cache"``, one line of the end-of-run text). A
warm cache that still shows compiles means a program's cache key changed between runs (a new
shape, flag or jax version), or that the program compiled faster than JAX's threshold for
storing it (``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``, 1 s by default).
"""

from __future__ import annotations

import threading

# JAX's monitoring events (jax._src.compiler, jax._src.dispatch).
_USES_CACHE = "/jax/compilation_cache/compile_requests_use_cache"
_HIT = "/jax/compilation_cache/cache_hits"
_STORED = "/jax/compilation_cache/cache_misses"  # recorded when the compiled program is written
_LOAD_SECONDS = "/jax/compilation_cache/cache_retrieval_time_sec"
_COMPILE_SECONDS = "/jax/core/compile/backend_compile_duration"  # compile, or load on a hit
_TRACE_SECONDS = "/jax/core/compile/jaxpr_trace_duration"
_LOWER_SECONDS = "/jax/core/compile/jaxpr_to_mlir_module_duration"

_ZERO = {
    "programs": 0,
    "loaded": 0,
    "stored": 0,
    "load_s": 0.0,
    "backend_s": 0.0,
    "trace_s": 0.0,
    "lower_s": 0.0,
}
_counts = dict(_ZERO)
_lock = threading.Lock()
_installed = False


def count_compiles() -> None:
    """Start counting this process's compiles (idempotent)."""
    global _installed
    import jax

    with _lock:
        if _installed:
            return
        _installed = True
    events = {_USES_CACHE: "programs", _HIT: "loaded", _STORED: "stored"}
    durations = {
        _LOAD_SECONDS: "load_s",
        _COMPILE_SECONDS: "backend_s",
        _TRACE_SECONDS: "trace_s",
        _LOWER_SECONDS: "lower_s",
    }

    def on_event(event: str, **_) -> None:
        if event in events:
            with _lock:
                _counts[events[event]] += 1

    def on_duration(event: str, duration: float, **_) -> None:
        if event in durations:
            with _lock:
                _counts[durations[event]] += float(duration)

    jax.monitoring.register_event_listener(on_event)
    jax.monitoring.register_event_duration_secs_listener(on_duration)


def compile_counts() -> dict:
    """This process's counts since ``count_compiles``: ``programs`` (compiles that went
    through the cache), ``loaded`` (of those, found in it), ``stored`` (compiled and written),
    ``load_s`` (reading hits), ``backend_s`` (XLA compiles and loads, every program), and
    ``trace_s`` and ``lower_s`` (tracing to a jaxpr and lowering it: paid before the cache is
    looked up, hit or miss)."""
    with _lock:
        return dict(_counts)


def merged(parts: list[dict]) -> dict:
    """The sum of several processes' ``compile_counts``."""
    total = dict(_ZERO)
    for part in parts:
        for key in total:
            total[key] += part.get(key, 0)
    return total


def describe(counts: dict) -> str:
    """One line for the end-of-run summary."""
    programs, loaded = counts.get("programs", 0), counts.get("loaded", 0)
    if not programs:
        return "off (no compile went through it)"
    compile_s = max(counts.get("backend_s", 0.0) - counts.get("load_s", 0.0), 0.0)
    return (
        f"{loaded} of {programs} programs loaded ({counts.get('load_s', 0.0):.1f} s), "
        f"{programs - loaded} compiled ({compile_s:.1f} s); traced and lowered in "
        f"{counts.get('trace_s', 0.0) + counts.get('lower_s', 0.0):.1f} s"
    )
