"""The spread of the per-step reward in each scenario, under the myopic OPF (zero bids).

    python -m benchmarks.reward_spread --config=configs/default.py --episodes=4 --eval_seed=7

Whole days of held-out episodes per scenario; prints the std of the per-step reward (over
steps and grids), of its step-to-step differences and of the return discounted at --gamma.
It is the scale PPO's advantages take in each scenario when they are pooled.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.compile import load_preset
from envs.env import make_env
from envs.sim import scenarios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.py")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--eval_seed", type=int, default=7)
    parser.add_argument("--gamma", type=float, default=0.99)
    args = parser.parse_args()
    env, params = make_env(load_preset(args.config).env)
    spec = env.spec(params)
    horizon = int(params.consts.horizon)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    @jax.jit
    def day_rewards(keys, scenario):
        _, state = jax.vmap(lambda k: env.reset_to_scenario(k, params, scenario))(keys)
        zero_bids = jnp.zeros((keys.shape[0], spec.num_agents, spec.action_dim))

        def one(state, key):
            _, state, reward, *_ = step(
                jax.random.split(key, keys.shape[0]), state, zero_bids, params
            )
            return state, reward[:, 0]

        _, rewards = jax.lax.scan(one, state, jax.random.split(jax.random.key(3), horizon))
        return rewards  # [T, N]

    print(f"{'scenario':24s} {'reward std':>10s} {'step-to-step':>12s} {'return std':>10s}")
    for name in scenarios.scenario_names():
        keys = scenarios.eval_keys(name, args.episodes, args.eval_seed)
        rewards = np.asarray(day_rewards(keys, scenarios.scenario_id(name)))
        returns, running = np.zeros_like(rewards), np.zeros(rewards.shape[1])
        for t in range(rewards.shape[0] - 1, -1, -1):
            running = rewards[t] + args.gamma * running
            returns[t] = running
        print(
            f"{name:24s} {rewards.std():10.2f} {np.diff(rewards, axis=0).std():12.2f} "
            f"{returns.std():10.1f}"
        )


if __name__ == "__main__":
    main()
