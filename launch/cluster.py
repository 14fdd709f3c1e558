"""Train on an existing Ray cluster: ``python -m launch.cluster --ray_address=HOST:PORT``.

The same program as ``launch.local``; its actor groups and learner are spread over the
cluster's nodes with a SPREAD placement group (one bundle per node of the program). Device
indices in the flags are logical indices *on the node* a group lands on. With ``--ship_code``
(default) this checkout is uploaded as the workers' working directory.
"""

import os

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
    config = cli.config_from_flags()
    run_dir = cli.run_dir_from_flags()
    cli.use_compilation_cache(config)
    try:
        program = build_program(config, run_dir, resume=flags.FLAGS.resume, host_devices=1 << 16)
    except START_UP_ERRORS as error:
        cli.exit_with_error(str(error))
    try:
        with RunDirLock(run_dir):
            backend = make_cluster_backend(
                program, flags.FLAGS.ray_address, flags.FLAGS.ship_code, flags.FLAGS.cpus_per_node
            )
            run_program(program, "cluster", backend=backend)
    except RunDirLockedError as error:
        cli.exit_with_error(str(error))


if __name__ == "__main__":
    app.run(main)
