"""Train on an existing Ray cluster: ``python -m launch.cluster --ray_address=HOST:PORT``.

The same program as ``launch.local``; its actor groups and learner are spread over the
cluster's nodes with a SPREAD placement group (one bundle per node of the program). Device
indices in the flags are logical indices *on the node* a group lands on. With ``--ship_code``
(default) this checkout is uploaded as the workers' working directory.
"""

import os
import socket

from absl import app, flags

from launch import cli
from launch.program import START_UP_ERRORS, Program, build_program
from launch.run_dir import RunDirLock, RunDirLockedError

flags.DEFINE_string("ray_address", None, "Address of the cluster's head (HOST:PORT).")
flags.DEFINE_bool("ship_code", True, "Upload this checkout as the workers' working directory.")
flags.DEFINE_integer("cpus_per_node", 1, "CPUs each node of the program reserves.")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE_EXCLUDES = [".venv", "runs", ".git", "**/__pycache__", "benchmarks/results"]


def node_names(program: Program) -> list[str]:
    return ["learner"] + [f"actor-{g.index}" for g in program.actor_groups]


def placement_bundles(program: Program, cpus: int) -> list[dict]:
    """One bundle per node of the program; accelerator counts follow its device set."""
    sizes = [len(program.learner_devices)] + [len(g.devices) for g in program.actor_groups]
    bundles = []
    for size in sizes:
        bundle = {"CPU": cpus}
        if program.platform == "gpu":
            bundle["GPU"] = size
        elif program.platform == "tpu":
            bundle["TPU"] = size
        bundles.append(bundle)
    return bundles


def spread_scheduling(program: Program, placement_group):
    """Map node name -> Ray scheduling options inside the placement group."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    index = {name: i for i, name in enumerate(node_names(program))}

    def options(name: str) -> dict:
        strategy = PlacementGroupSchedulingStrategy(placement_group, index[name])
        return {"scheduling_strategy": strategy}

    return options


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port), or ValueError naming what is wrong."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--ray_address must be HOST:PORT (e.g. 10.0.0.1:6379), got {address!r}")
    return host, int(port)


def check_head_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds with a clear message; ``ray.init`` would retry for about a minute."""
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        raise ConnectionError(f"no Ray head reachable at {host}:{port} ({error})") from None


def ray_auth_token_available(environ=os.environ, home: str | None = None) -> bool:
    """Whether this machine holds a Ray authentication token (where Ray looks for one)."""
    if environ.get("RAY_AUTH_TOKEN"):
        return True
    path = environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(
        home or os.path.expanduser("~"), ".ray", "auth_token"
    )
    return os.path.isfile(path)


def use_ray_token_auth_if_available(environ=os.environ, home: str | None = None) -> bool:
    """Send the local token when connecting, unless ``RAY_AUTH_MODE`` says otherwise.

    Recent Ray versions turn token authentication on in ``ray start --head`` whenever a token
    exists on the head machine, but a client given an explicit address does not turn it on
    by itself, so it is refused with an authentication error. Doing what ``ray start`` did
    makes ``--ray_address`` work against a head started the default way.
    """
    if "RAY_AUTH_MODE" in environ or not ray_auth_token_available(environ, home):
        return environ.get("RAY_AUTH_MODE", "").lower() == "token"
    environ["RAY_AUTH_MODE"] = "token"
    return True


def make_cluster_backend(program: Program, address: str, ship_code: bool, cpus: int):
    import ray
    from ray.util.placement_group import placement_group

    from launch.backends import RayBackend

    runtime_env = {"working_dir": REPO_ROOT, "excludes": CODE_EXCLUDES} if ship_code else {}
    ray.init(
        address=address,
        runtime_env=runtime_env or None,
        log_to_driver=True,
        logging_level="warning",
    )
    group = placement_group(placement_bundles(program, cpus), strategy="SPREAD")
    ray.get(group.ready(), timeout=300)
    return RayBackend(
        program.platform,
        int(program.config.runtime.max_actor_restarts),
        scheduling=spread_scheduling(program, group),
    )


def main(argv) -> None:
    del argv
    from launch.runner import run_program

    if not flags.FLAGS.ray_address:
        cli.exit_with_error("--ray_address=HOST:PORT is required")
    try:
        check_head_reachable(flags.FLAGS.ray_address)
    except (ValueError, ConnectionError) as error:
        cli.exit_with_error(str(error))
    # Before Ray is imported anywhere: it reads the mode once into its cached config.
    use_ray_token_auth_if_available()
    config = cli.config_from_flags()
    run_dir = cli.run_dir_from_flags()
    cli.use_compilation_cache(config)
    try:
        program = build_program(config, run_dir, resume=flags.FLAGS.resume, host_devices=1 << 16)
    except START_UP_ERRORS as error:
        cli.exit_with_error(str(error))
    cli.resolve_case(program.config)
    try:
        with RunDirLock(run_dir):
            backend = make_cluster_backend(
                program, flags.FLAGS.ray_address, flags.FLAGS.ship_code, flags.FLAGS.cpus_per_node
            )
            run_program(program, "cluster", backend=backend)
    except (RunDirLockedError, ConnectionError) as error:
        cli.exit_with_error(str(error))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
