"""launch.compile_cache: a run's compiles, counted as loaded from the persistent cache or not."""

import jax
import jax.numpy as jnp
import numpy as np

from launch import compile_cache
from launch.progress import summary_text


def test_counts_a_compile_and_then_a_load_from_the_persistent_cache():
    # The suite's own cache directory (tests/conftest.py); every program is stored in it here.
    assert jax.config.jax_compilation_cache_dir
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    min_size = jax.config.jax_persistent_cache_min_entry_size_bytes
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    try:
        compile_cache.count_compiles()
        compile_cache.count_compiles()  # idempotent: events are counted once
        before = compile_cache.compile_counts()

        def program(x):  # a function of its own: no other test has compiled it
            return jnp.cumsum(jnp.sin(x) * 7.25) - 3.5

        x = np.arange(13.0, dtype=np.float32)  # host data: no compile of its own
        jax.jit(program)(x).block_until_ready()
        compiled = compile_cache.compile_counts()
        assert compiled["programs"] == before["programs"] + 1
        assert compiled["loaded"] == before["loaded"]
        assert compiled["stored"] == before["stored"] + 1

        jax.clear_caches()  # as a new process would: only the persistent cache remains
        jax.jit(program)(x).block_until_ready()
        loaded = compile_cache.compile_counts()
        assert loaded["programs"] == compiled["programs"] + 1
        assert loaded["loaded"] == compiled["loaded"] + 1
        assert loaded["load_s"] > compiled["load_s"]
        assert loaded["trace_s"] > compiled["trace_s"]  # a hit is traced again
    finally:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", min_time)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", min_size)


def test_node_counts_sum_and_read_in_one_summary_line():
    learner = {"programs": 3, "loaded": 1, "stored": 2, "load_s": 0.5, "backend_s": 20.5}
    actor = {"programs": 2, "loaded": 2, "stored": 0, "load_s": 1.0, "backend_s": 1.0}
    actor |= {"trace_s": 2.0, "lower_s": 0.25}
    total = compile_cache.merged([learner, actor])
    assert total == {
        "programs": 5,
        "loaded": 3,
        "stored": 2,
        "load_s": 1.5,
        "backend_s": 21.5,
        "trace_s": 2.0,
        "lower_s": 0.25,
    }
    text = summary_text({"compilation_cache": total}, "/runs/x", "local_mp", 0)
    expected = "3 of 5 programs loaded (1.5 s), 2 compiled (20.0 s); traced and lowered in 2.2 s"
    assert f"XLA cache        {expected}" in text
    assert "off" in compile_cache.describe(compile_cache.merged([]))
