"""One local Ray instance per test process, shared by the replay, actors and launch tests.

Starting Ray costs several seconds, so the first test that needs it starts it and it stays up
until the interpreter exits.
"""

import atexit

import ray


def ensure_local_ray() -> None:
    if ray.is_initialized():
        return
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        object_store_memory=256 * 1024 * 1024,
    )
    atexit.register(ray.shutdown)
