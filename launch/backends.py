"""How nodes are run: as threads of this process (``local_mt``) or as Ray actors (processes).

A backend makes the queue, the variable server and node handles. Node handles have one
interface — ``start``, ``done``, ``result``, ``call`` — so the supervisor does not care which
backend it drives.
"""

from __future__ import annotations

import concurrent.futures
import os

from launch import compile_cache
from launch.devices import (
    CPU_CORES_ENV,
    cpu_cores_of,
    node_cpu_xla_flags,
    pin_process_to_env_cores,
    process_env_vars,
)
from launch.threefry_lowering import unroll_threefry_on_cpu
from replay.trajectory_queue import TrajectoryQueue
from replay.variable_server import VariableServer


class ThreadNode:
    """A node object whose ``run`` executes in a thread of this process."""

    restartable = False

    def __init__(self, node, name: str):
        self.node, self.name = node, name
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._future: concurrent.futures.Future | None = None

    def start(self, *args) -> None:
        self._future = self._executor.submit(self.node.run, *args)

    def done(self) -> bool:
        return self._future is not None and self._future.done()

    def result(self, timeout: float | None = None):
        return self._future.result(timeout)

    def call(self, method: str, *args, timeout: float | None = None):
        return getattr(self.node, method)(*args)

    def kill(self) -> None:
        self.node.stop()
        self._executor.shutdown(wait=False)


class ThreadBackend:
    """``local_mt``: every node is a thread; devices are indices into this process's devices."""

    name = "local_mt"
    max_restarts = 0  # a thread cannot die alone: any actor error ends the run

    def queue(self, capacity: int, min_fill: int):
        return TrajectoryQueue(capacity, min_fill)

    def variable_server(self):
        return VariableServer()

    def node(self, cls, kwargs: dict, devices: tuple[int, ...], name: str, restartable: bool):
        compile_cache.count_compiles()
        return ThreadNode(cls(device_indices=devices, **kwargs), name)

    def compile_counts(self, nodes) -> dict:
        """The compilation cache's counts of this process, where every node runs."""
        del nodes
        return compile_cache.compile_counts()

    def shutdown(self) -> None:
        pass


class RayNode:
    """A Ray actor whose ``run`` is one long-running method call."""

    def __init__(self, handle, name: str, restartable: bool):
        self.handle, self.name, self.restartable = handle, name, restartable
        self._ref = None

    def start(self, *args) -> None:
        self._ref = self.handle.run.remote(*args)

    def done(self) -> bool:
        import ray

        return self._ref is not None and bool(ray.wait([self._ref], timeout=0)[0])

    def result(self, timeout: float | None = None):
        import ray

        return ray.get(self._ref, timeout=timeout)

    def call(self, method: str, *args, timeout: float | None = 30.0):
        import ray

        return ray.get(getattr(self.handle, method).remote(*args), timeout=timeout)

    def kill(self) -> None:
        import ray

        ray.kill(self.handle, no_restart=True)


class RayBackend:
    """``local_mp`` and clusters: every node is a process pinned to its devices by env vars."""

    name = "ray"

    def __init__(
        self, platform: str, max_restarts: int, scheduling=None, runtime_env=None, cpu_pinning=None
    ):
        """``cpu_pinning = (emulated device count, usable host core ids)`` pins each node
        process of a CPU host to the cores behind its devices (``devices.cpu_cores_of``)."""
        self.platform = platform
        self.max_restarts = max_restarts
        self._scheduling = scheduling or (lambda name: {})
        self._runtime_env = runtime_env or {}
        self._cpu_pinning = cpu_pinning if platform == "cpu" else None

    def queue(self, capacity: int, min_fill: int):
        from replay.ray_nodes import create_queue

        return create_queue(capacity, min_fill)

    def variable_server(self):
        from replay.ray_nodes import create_variable_server

        return create_variable_server()

    def node(self, cls, kwargs: dict, devices: tuple[int, ...], name: str, restartable: bool):
        import ray

        env_vars = process_env_vars(self.platform, devices, node_cpu_xla_flags(name))
        env_vars |= passthrough_env_vars()
        if self._cpu_pinning is not None:
            cores = cpu_cores_of(devices, *self._cpu_pinning)
            env_vars[CPU_CORES_ENV] = ",".join(str(c) for c in cores)
        cls = prepared_on_start(cls, pin=self._cpu_pinning is not None)
        options = dict(
            num_cpus=0,
            max_concurrency=8,  # run() plus progress/stop/pid calls at the same time
            max_restarts=self.max_restarts if restartable else 0,
            runtime_env=self._runtime_env | {"env_vars": env_vars},
            **self._scheduling(name),
        )
        local = tuple(range(len(devices)))  # the process sees only its devices, from 0
        handle = ray.remote(cls).options(**options).remote(device_indices=local, **kwargs)
        return RayNode(handle, name, restartable)

    def compile_counts(self, nodes) -> dict:
        """The compilation cache's counts summed over the node processes (best effort: a
        node that does not answer contributes nothing)."""
        parts = []
        for node in nodes:
            try:
                parts.append(node.call("compile_counts", timeout=5.0))
            except Exception:
                continue
        return compile_cache.merged(parts)

    def shutdown(self) -> None:
        import ray

        ray.shutdown()


def prepared_on_start(cls, pin: bool):
    """``cls`` whose constructor first prepares its process: threefry unrolled on CPU
    (``launch.threefry_lowering``), its compiles counted (``launch.compile_cache``) and, with
    ``pin``, the process pinned to the cores in ``CPU_CORES_ENV``."""

    class Prepared(cls):
        def __init__(self, *args, **kwargs):
            unroll_threefry_on_cpu()
            compile_cache.count_compiles()
            if pin:
                pin_process_to_env_cores()
            super().__init__(*args, **kwargs)

        def compile_counts(self) -> dict:
            return compile_cache.compile_counts()

    Prepared.__name__ = Prepared.__qualname__ = cls.__name__
    return Prepared


def passthrough_env_vars() -> dict[str, str]:
    """Settings of the launching shell that node processes should share."""
    keys = (
        "JAX_COMPILATION_CACHE_DIR",
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
        "JAX_ENABLE_X64",
        "PYTHONPATH",
    )
    return {k: os.environ[k] for k in keys if k in os.environ}
