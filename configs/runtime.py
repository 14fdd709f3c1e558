"""The runtime's own sub-configs (``config.actors``, ``config.runtime``, ``config.evaluator``).

Presets in this package compose them with ``envs.config.default_env_config()`` and
``learner.config.default_learner_config()``. Values of 0 for the queue sizes mean "derive from
the batch geometry" (``launch.program.queue_sizes``). ``validate_runtime_configs`` checks
every field against the tables below.
"""

import ml_collections

from envs.config_fields import POSITIVE, at_least, check_fields, one_of


def actors_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.num_envs = 32  # B grids per actor thread; one rollout is [T = learner.unroll_length, B]
    c.threads_per_device = 1  # actor threads sharing one device (overlap host work and compute)
    c.put_timeout_s = 600.0  # a full queue for this long means the learner is gone
    c.first_params_timeout_s = 600.0  # wait for the learner's first publish
    return c


def runtime_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.platform = "auto"  # auto | cpu | gpu | tpu
    c.cpu_devices = 4  # devices emulated on a CPU host (XLA host-platform device count)
    c.actor_devices = "0,1"  # logical device indices of the host
    c.learner_devices = "2,3"
    c.actor_processes = 1  # actor devices are split evenly over this many processes
    c.queue_capacity = 0  # items; 0 = items per update (lowest policy lag)
    c.queue_min_fill = 0  # items before the learner starts; 0 = items per update
    c.take_timeout_s = 900.0  # no data for this long (first compile included) is an error
    c.max_actor_restarts = 5  # per actor process, then the run fails
    # Deprecated (0 = unset): the cadence is learner.checkpoint.save_every_updates, where a
    # non-zero value here is moved with a warning (configs/validation.py).
    c.checkpoint_every_updates = 0
    c.progress_every_s = 2.0  # plain progress line period when stdout is not a TTY
    c.num_cpus = 0  # Ray CPU resources; 0 = os.cpu_count()
    # local_mp on a CPU host: pin each node process to the cores behind its emulated devices
    # (devices split evenly over the cores), so actors and learner never share a core, as
    # they would not share an accelerator. Off by default: on few cores, time sharing is faster.
    c.pin_cpu_cores = False
    c.object_store_mb = 1024  # Ray object store for trajectories (local launches)
    # Persistent XLA compilation cache shared by all node processes ("" = off): later runs and
    # restarted actor processes skip most compilation. JAX_COMPILATION_CACHE_DIR wins if set.
    c.compilation_cache_dir = "~/.cache/gridpod/xla"
    c.wandb_project = ""  # Weights & Biases project the learner and evaluator also log to; "" = off
    return c


def evaluator_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.enabled = False
    c.every_updates = 50
    c.num_envs = 8  # held-out scenarios run in parallel, one fixed seed each
    c.seed = 10_007  # fixed seeds, disjoint from training seeds
    c.episode_steps = 0  # 0 = env.horizon
    return c


ACTORS_RULES = {
    "num_envs": at_least(1),
    "threads_per_device": at_least(1),
    "put_timeout_s": POSITIVE,
    "first_params_timeout_s": POSITIVE,
}
RUNTIME_RULES = {
    "platform": one_of("auto", "cpu", "gpu", "tpu"),
    "cpu_devices": at_least(1),
    "actor_processes": at_least(1),
    "queue_capacity": at_least(0),
    "queue_min_fill": at_least(0),
    "take_timeout_s": POSITIVE,
    "max_actor_restarts": at_least(0),
    "checkpoint_every_updates": at_least(0),
    "progress_every_s": POSITIVE,
    "num_cpus": at_least(0),
    "object_store_mb": at_least(64),  # Ray's own floor for a local object store
}
EVALUATOR_RULES = {
    "every_updates": at_least(1),
    "num_envs": at_least(1),
    "seed": at_least(0),
    "episode_steps": at_least(0),
}


def validate_runtime_configs(config: ml_collections.ConfigDict) -> None:
    """Check ``config.actors``, ``config.runtime`` and ``config.evaluator`` field by field."""
    check_fields("actors", config.actors, ACTORS_RULES)
    check_fields("runtime", config.runtime, RUNTIME_RULES)
    check_fields("evaluator", config.evaluator, EVALUATOR_RULES)
    for name in ("actor_devices", "learner_devices"):
        if not isinstance(config.runtime[name], str):
            raise ValueError(
                f"runtime.{name}={config.runtime[name]!r} is invalid: allowed comma-separated "
                "device indices, e.g. '0,1'"
            )
