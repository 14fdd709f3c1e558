"""Stable-Baselines3 PPO on gridpod's single-agent view (the whole team as one agent).

    pip install 'gridpod[sb3]'
    python examples/sb3_single_agent.py --case ieee14 --timesteps 5000

Trains SB3's PPO on ``gridpod/Grid-v0`` from Gymnasium's registry (``GridGymEnv``: the
global state as observation, every agent's real action dimensions as one Box action), then
plays the same held-out episodes with the trained policy and with the do-nothing operator
(every unit holds its output; ``GridGymEnv.baseline_action``) and prints each one's mean
episode cost. A few thousand steps show the API working end to end; they are far from what
it takes to beat the operators (``python -m launch.local`` trains the multi-agent policy).
"""

import argparse

import gymnasium
import numpy as np
from stable_baselines3 import PPO

import envs.interop  # noqa: F401  (registers gridpod/Grid-v0)
from envs.config import CASES

EVAL_SEED = 10_007  # held-out episodes: seeds apart from the training ones


def episode_cost(env, seed: int, act) -> float:
    """Total ``info["cost"]`` ($) of one episode with ``act(obs) -> action``."""
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, _, terminated, truncated, info = env.step(act(obs))
        total += info["cost"]
        done = terminated or truncated
    return total


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="ieee14", choices=CASES)
    parser.add_argument("--horizon", type=int, default=96, help="steps per episode (8 hours)")
    parser.add_argument("--timesteps", type=int, default=5000, help="PPO training steps")
    parser.add_argument("--n-steps", type=int, default=512, help="PPO rollout length")
    parser.add_argument("--eval-episodes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(args.horizon, args.timesteps, args.n_steps, args.eval_episodes) < 1:
        parser.error("--horizon, --timesteps, --n-steps and --eval-episodes must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    keywords = dict(case=args.case, horizon=args.horizon)
    env = gymnasium.make("gridpod/Grid-v0", **keywords)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=args.n_steps,
        batch_size=min(64, args.n_steps),
        seed=args.seed,
        verbose=0,
    )
    model.learn(total_timesteps=args.timesteps)

    eval_env = gymnasium.make("gridpod/Grid-v0", **keywords)
    seeds = range(EVAL_SEED, EVAL_SEED + args.eval_episodes)
    policy = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731
    hold = lambda obs: eval_env.unwrapped.baseline_action("do_nothing")  # noqa: E731
    ppo_cost = np.mean([episode_cost(eval_env, s, policy) for s in seeds])
    hold_cost = np.mean([episode_cost(eval_env, s, hold) for s in seeds])
    print(
        f"{args.case}, PPO after {args.timesteps} steps, {args.eval_episodes} held-out "
        f"episodes of {args.horizon} steps: mean episode cost ${ppo_cost:,.0f} "
        f"(do-nothing ${hold_cost:,.0f}, PPO / do-nothing {ppo_cost / hold_cost:.3f})"
    )


if __name__ == "__main__":
    main()
