"""Time one learner update (compile excluded) on a synthetic batch shaped like a real env's.

    python -m benchmarks.learner_update --case ieee14 --batch_size 64 --unroll_length 32
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m benchmarks.learner_update --devices 2

Prints compile time and the median wall and process-CPU time of an update over
``--repeats`` runs, with the default learner config otherwise.
"""

import argparse
import statistics
import time

import jax
import numpy as np

from envs.sim.scenarios import scenario_names
from envs.types import EnvSpec
from learner.config import default_learner_config
from learner.learner import Learner
from replay.types import Trajectory


def synthetic_batch(spec: EnvSpec, unroll: int, batch: int, seed: int = 0) -> Trajectory:
    """Random but well-formed data with the spec's shapes (host NumPy arrays)."""
    rng = np.random.default_rng(seed)
    a, f32 = spec.num_agents, np.float32
    per_agent = (unroll, batch, a)
    return Trajectory(
        obs=rng.normal(size=(*per_agent, spec.obs_dim)).astype(f32),
        global_state=rng.normal(size=(unroll, batch, spec.global_dim)).astype(f32),
        action=np.tanh(rng.normal(size=(*per_agent, spec.action_dim))).astype(f32),
        log_prob=(rng.normal(size=per_agent) - 1.0).astype(f32),
        value=rng.normal(size=per_agent).astype(f32),
        reward=rng.normal(size=per_agent).astype(f32),
        terminated=rng.random((unroll, batch)) < 0.01,
        truncated=rng.random((unroll, batch)) < 0.01,
        truncation_value=np.zeros(per_agent, f32),
        scenario=rng.integers(0, len(scenario_names()), (unroll, batch)).astype(np.int32),
        last_value=np.zeros((batch, a), f32),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="ieee14")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--unroll_length", type=int, default=32)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from envs.config import default_env_config
    from envs.env import make_env

    env_config = default_env_config()
    env_config.case = args.case
    env, env_params = make_env(env_config)
    spec = env.spec(env_params)
    config = default_learner_config()
    config.batch_size, config.unroll_length = args.batch_size, args.unroll_length
    learner = Learner(config, spec, jax.devices()[: args.devices])
    batch = synthetic_batch(spec, args.unroll_length, args.batch_size)
    state = learner.init(jax.random.key(0))
    start = time.perf_counter()
    state, metrics = learner.update(state, batch)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    walls, cpus = [], []
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        state, metrics = learner.update(state, batch)
        jax.block_until_ready(metrics)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    g = learner.geometry
    print(
        f"{args.case}: A={spec.num_agents} O={spec.obs_dim} S={spec.global_dim} U={spec.action_dim}"
        f" | T={g.unroll_length} B={g.batch_size} devices={g.num_devices}"
        f" | {config.num_epochs} epochs x {g.num_minibatches} minibatches of"
        f" {config.minibatch_size} samples"
    )
    print(
        f"first update (compile + run) {compile_s:.1f} s; update median wall "
        f"{statistics.median(walls) * 1e3:.0f} ms, process CPU {statistics.median(cpus) * 1e3:.0f} ms"
        f" ({g.unroll_length * g.batch_size / statistics.median(walls):.0f} samples/s)"
    )


if __name__ == "__main__":
    main()
