"""Train on one machine: ``python -m launch.local [--launch_type=local_mp|local_mt]``.

``local_mp`` (default) runs every actor group and the learner as processes of a private local
Ray instance, each pinned to its devices; ``local_mt`` runs the same program as threads of this
process (Podracer's Sebulba). See launch/cli.py for the flags.
"""

# Launchers may set XLA/JAX settings, and must before JAX is imported: on a CPU host this
# process emulates the devices it schedules (local_mt uses them; local_mp's nodes get their own).
import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()

import sys

from absl import app, flags

from launch import cli
from launch.devices import (
    LEARNER_CPU_XLA_FLAGS,
    detect_platform,
    with_default_flags,
    with_host_device_count,
)
from launch.processes import start_reaper, tag_this_run
from launch.program import START_UP_ERRORS, build_program
from launch.run_dir import RunDirLock, RunDirLockedError
from launch.runner import run_program
from launch.threefry_lowering import unroll_threefry_on_cpu

# --help lists the launcher's main flags (config, run_dir, seed, resume, devices, ...), not
# only this module's own.
flags.adopt_module_key_flags(cli)
flags.DEFINE_enum("launch_type", "local_mp", ["local_mp", "local_mt"], "Processes or threads.")
flags.DEFINE_bool(
    "dashboard", False, "Start Ray's dashboard on 127.0.0.1:8265 (local_mp; off by default)."
)


def keep_ray_on_loopback() -> None:
    """Make the local Ray instance's servers listen on 127.0.0.1 only.

    Ray replaces a node address of 127.0.0.1 by the machine's outward address
    (``services.resolve_ip_for_localhost``) so that other machines could join; its GCS server,
    raylet and workers then listen on every interface, reachable by anyone on the network. A
    single-machine run has no other machines: with the loopback address kept, every server
    binds to it. tests/launch/test_run_processes.py checks the sockets of a real run.
    """
    from ray._private import services

    services.resolve_ip_for_localhost = lambda host: host


def make_backend(program, launch_type: str):
    from launch.backends import RayBackend, ThreadBackend

    if launch_type == "local_mt":
        return ThreadBackend()
    # Ray's token authentication (its default for a new local instance), stated so Ray does not
    # warn about it on every run. Ray reads the mode once, when it is first imported.
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        # Under `uv run`, Ray would start every worker through `uv run` again: a second
        # environment built in Ray's session directory on each run. The launcher's own
        # interpreter and environment are what the workers need.
        os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    import ray

    # Ray runs workers at nice 15 by default; here the workers *are* the training job.
    os.environ.setdefault("RAY_worker_niceness", "0")
    keep_ray_on_loopback()
    runtime = program.config.runtime
    ray.init(
        address="local",
        num_cpus=int(runtime.num_cpus) or os.cpu_count(),
        include_dashboard=flags.FLAGS.dashboard,
        dashboard_host="127.0.0.1",
        _node_ip_address="127.0.0.1",
        log_to_driver=True,
        logging_level="warning",
        object_store_memory=int(runtime.object_store_mb) * 1024 * 1024,
    )
    pinning = None
    if runtime.pin_cpu_cores:
        pinning = (int(runtime.cpu_devices), tuple(sorted(os.sched_getaffinity(0))))
    return RayBackend(program.platform, int(runtime.max_actor_restarts), cpu_pinning=pinning)


def pin_this_process(config, launch_type: str) -> None:
    """local_mt runs nodes here: emulate the configured CPU device count (before JAX starts).

    The learner's XLA:CPU flags apply to the whole process: its update dominates the CPU time.
    """
    platform = detect_platform(config.runtime.platform)
    if launch_type == "local_mt" and platform == "cpu" and "jax" not in sys.modules:
        count = int(config.runtime.cpu_devices)
        flags = with_default_flags(os.environ.get("XLA_FLAGS", ""), LEARNER_CPU_XLA_FLAGS)
        os.environ["XLA_FLAGS"] = with_host_device_count(flags, count)
        os.environ.setdefault("JAX_PLATFORMS", "cpu")


def main(argv) -> None:
    del argv
    config = cli.config_from_flags()
    run_dir = cli.run_dir_from_flags()
    launch_type = flags.FLAGS.launch_type
    cli.use_compilation_cache(config)
    try:
        pin_this_process(config, launch_type)
        unroll_threefry_on_cpu()  # local_mt nodes run here; after the XLA flags are set
        program = build_program(config, run_dir, resume=flags.FLAGS.resume)
    except START_UP_ERRORS as error:
        cli.exit_with_error(str(error))
    cli.resolve_case(program.config)
    if launch_type == "local_mp":  # processes that must not outlive this one, even on kill -9
        start_reaper(tag_this_run())
    try:
        with RunDirLock(run_dir):
            run_program(program, launch_type, make_backend(program, launch_type))
    except RunDirLockedError as error:
        cli.exit_with_error(str(error))


def run() -> None:
    """Console-script entry point (pyproject [project.scripts])."""
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
