"""gridpod as a pure JAX environment: gymnax-style ``reset``/``step`` under ``vmap`` and ``scan``.

    python examples/pure_jax_loop.py --case ieee14 --num-envs 256 --steps 288 --policy random

``env.reset(key, params)`` and ``env.step(key, state, action, params)`` are pure functions,
so B grids are ``jax.vmap`` of them and T steps are ``jax.lax.scan``: the whole rollout,
policy included, is one compiled call that never leaves the device. Finished episodes reset
in place inside ``step``. Policies: ``random`` (uniform in [-1, 1] on every real action
dimension) or ``do_nothing`` (``envs.opf.baselines``: every unit holds its output). Prints the
env steps per second of the compiled rollout (a second call, after compilation), the mean
per-agent reward and the mean step cost.
"""

import argparse
import time

import jax
import jax.numpy as jnp

from envs.config import CASES, default_env_config
from envs.env import make_env
from envs.opf import baselines

POLICIES = ("random", "do_nothing")


def make_rollout(env, params, policy: str, num_envs: int, num_steps: int):
    """A jitted ``rollout(key) -> (reward [T, B], done [T, B], cost [T, B])``."""
    spec = env.spec(params)
    real_action = jnp.asarray(spec.action_mask & spec.agent_mask[:, None])  # [A, U]
    live_agents = jnp.asarray(spec.agent_mask)  # [A]
    hold = baselines.do_nothing(params)
    batched_reset = jax.vmap(env.reset, in_axes=(0, None))
    batched_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def act(key, obs, state):
        if policy == "do_nothing":
            return hold(obs, state, key, None)
        action = jax.random.uniform(key, (num_envs, *real_action.shape), minval=-1.0, maxval=1.0)
        return jnp.where(real_action[None], action, 0.0)

    def step(carry, key):
        obs, state = carry
        key_act, key_step = jax.random.split(key)
        action = act(key_act, obs, state)
        step_keys = jax.random.split(key_step, num_envs)
        obs, state, reward, terminated, truncated, info = batched_step(
            step_keys, state, action, params
        )
        team_reward = jnp.sum(reward * live_agents[None], axis=-1) / jnp.sum(live_agents)
        return (obs, state), (team_reward, terminated | truncated, info["cost"])

    @jax.jit
    def rollout(key):
        key_reset, key_steps = jax.random.split(key)
        obs, state = batched_reset(jax.random.split(key_reset, num_envs), params)
        keys = jax.random.split(key_steps, num_steps)
        _, (reward, done, cost) = jax.lax.scan(step, (obs, state), keys)
        return reward, done, cost

    return rollout


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="ieee14", choices=CASES)
    parser.add_argument("--num-envs", type=int, default=256, help="B grids stepped together")
    parser.add_argument("--steps", type=int, default=288, help="T steps per rollout")
    parser.add_argument("--policy", default="random", choices=POLICIES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_envs < 1 or args.steps < 1:
        parser.error("--num-envs and --steps must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    config = default_env_config()
    config.case = args.case
    env, params = make_env(config)
    rollout = make_rollout(env, params, args.policy, args.num_envs, args.steps)
    key_compile, key_timed = jax.random.split(jax.random.PRNGKey(args.seed))
    start = time.perf_counter()
    jax.block_until_ready(rollout(key_compile))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    reward, done, cost = jax.block_until_ready(rollout(key_timed))
    rollout_s = time.perf_counter() - start
    steps = args.num_envs * args.steps
    print(
        f"{args.case}, {args.num_envs} grids x {args.steps} steps, policy {args.policy}: "
        f"{steps / rollout_s:,.0f} env steps/s (rollout {rollout_s:.3f} s, first call with "
        f"compilation {compile_s:.1f} s)"
    )
    print(
        f"mean reward {float(reward.mean()):.4f}, mean step cost ${float(cost.mean()):,.2f}, "
        f"episodes ended {int(done.sum())}"
    )


if __name__ == "__main__":
    main()
