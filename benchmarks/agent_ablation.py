"""Which agents of a trained team carry its gains and its costs? A checkpoint's greedy team,
rolled out with one agent type's actions replaced by the teacher's (zero: under the ``bids``
interface, that agent's devices offer at cost), against the whole team and the teacher.

    python -m benchmarks.agent_ablation --run_dir=RUN [--steps=80,640] [--episodes=2] \
        [--override=--config.env.alarm_margin=0.05]

Each variant runs on the same episodes (a development set, ``--eval_seed``, default 7; 0 and 1,
the suite's and the learning benchmark's held-out sets, are refused). For every checkpoint,
scenario and variant it prints the cost over the teacher's (the mean over episodes of each
episode's ratio, as the validation counts it), and overload steps and blackouts per episode;
then the teacher's mean cost per scenario, so that runs with different env overrides compare.

Read it as credit: if the team's premium on quiet days goes when one type is zeroed while its
savings under stress stay, that type bids the premium (benchmarks/README.md, "Which agents carry the premium").
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from absl import app, flags

from benchmarks.harness import describe, describe_line, usage_errors

RESERVED_SETS = (0, 1)  # the evaluation suite's and the learning benchmark's held-out sets


def define_flags() -> dict:
    """The command's flags, defined when it runs (``__main__``), not on import."""
    return {
        "run_dir": flags.DEFINE_string("run_dir", None, "Run directory (its checkpoints/)."),
        "steps": flags.DEFINE_list(
            "steps", [], "Checkpoint steps (update numbers); default: the latest."
        ),
        "episodes": flags.DEFINE_integer("episodes", 2, "Whole-day episodes per scenario."),
        "scenarios": flags.DEFINE_list("scenarios", [], "Scenarios; default: all six."),
        "eval_seed": flags.DEFINE_integer(
            "eval_seed", 7, "Episode set (scenarios.eval_keys); 0 and 1 are refused."
        ),
        "override": flags.DEFINE_multi_string(
            "override",
            [],
            "Env overrides for every variant's rollouts, the teacher's included, e.g. "
            "'--config.env.alarm_margin=0.05' (repeat the flag, or several in one string).",
        ),
    }


def variant_masks(agent_type: np.ndarray, type_names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """{variant: [A] 1.0 where the agent acts, 0.0 where it gives the teacher's zero action}.

    ``team`` (everyone), ``without <type>`` and ``only <type>`` per type (``only`` only where
    there are more than two types: with two it is the other's ``without``), ``teacher``."""
    agent_type = np.asarray(agent_type)
    masks = {"team": np.ones(agent_type.shape, np.float32)}
    for index, name in enumerate(type_names):
        masks[f"without {name}"] = (agent_type != index).astype(np.float32)
    if len(type_names) > 2:
        for index, name in enumerate(type_names):
            masks[f"only {name}"] = (agent_type == index).astype(np.float32)
    masks["teacher"] = np.zeros(agent_type.shape, np.float32)
    return masks


def masked_acting(network, env, env_params):
    """An ActFn whose args are ``(params, norm_state, mask [A])``: the greedy team's action
    with the agents outside the mask at zero. The mask is an argument, not a constant, so
    every variant runs the one compiled rollout."""
    import jax

    setpoints = jax.vmap(env.setpoints, in_axes=(0, 0, None))

    def act(obs, state, key, args):
        del key
        params, norm_state, mask = args
        action = network(obs, (params, norm_state)) * mask[None, :, None]
        return setpoints(action, state, env_params)

    return act


def check_run_flags(flag) -> None:
    """A clear error for a missing run, no episodes or a held-out episode set (the flags every
    checkpoint diagnosis here shares)."""
    if not flag["run_dir"].value:
        raise ValueError("--run_dir is required: a training run's directory")
    if flag["episodes"].value < 1:
        raise ValueError(f"--episodes must be >= 1, got {flag['episodes'].value}")
    if flag["eval_seed"].value in RESERVED_SETS:
        raise ValueError(
            f"--eval_seed={flag['eval_seed'].value} is a held-out set (0 the suite's, 1 the "
            "learning benchmark's): diagnose on another"
        )


def check_flags(flag) -> None:
    """A clear error for flags that cannot run."""
    from envs.sim import scenarios

    check_run_flags(flag)
    unknown = set(flag["scenarios"].value) - set(scenarios.scenario_names())
    if unknown:
        raise ValueError(f"--scenarios: unknown {sorted(unknown)}")
    for step in flag["steps"].value:
        if not step.strip().isdigit():
            raise ValueError(f"--steps: {step!r} is not a checkpoint step")
    env_overrides(flag)


def env_overrides(flag) -> tuple[str, ...]:
    """--override as ``--config.env.<field>=<value>`` items; anything but the env is refused
    (the team is trained: only the env it acts in can change)."""
    from benchmarks.learning.settings import env_only, parse_overrides

    overrides = parse_overrides(flag["override"].value)
    return env_only(overrides, ": only the env (--config.env.<field>) can change")


def ablate(checkpoint_dir: Path, step, names, episodes: int, eval_seed: int, overrides=()) -> dict:
    """{variant: {"cost_vs_teacher": [scenarios], "mean_cost": [scenarios], "overload_steps":
    mean, "blackouts": mean}} for the checkpoint at ``step`` (None: the latest), on
    ``episodes`` days of each scenario, in the run's env with the env ``overrides``."""
    import jax
    import jax.numpy as jnp

    from benchmarks.learning.settings import with_env_overrides
    from envs.env import make_env
    from envs.evaluation import rollout as rollout_lib
    from envs.evaluation.metrics import episode_metrics
    from envs.evaluation.suite import episode_horizon
    from envs.sim import scenarios
    from launch.evaluation import load_policy

    config, spec, _, args, network = load_policy(checkpoint_dir, step)
    env, env_params = make_env(with_env_overrides(config.env, tuple(overrides)))
    masks = variant_masks(np.asarray(spec.agent_type), tuple(spec.agent_type_names))
    policies = (masked_acting(network, env, env_params),)
    keys = jnp.concatenate([scenarios.eval_keys(n, episodes, eval_seed) for n in names])
    ids = jnp.asarray([scenarios.scenario_id(n) for n in names], jnp.int32)
    horizon = episode_horizon(env_params, 0)
    episodes_of = {}
    for variant, mask in masks.items():
        record = rollout_lib.rollout(
            env_params,
            policies,
            jnp.int32(0),
            keys,
            jnp.repeat(ids, episodes),
            horizon,
            (*args, jnp.asarray(mask)),
        )
        episodes_of[variant] = episode_metrics(jax.device_get(record), env_params)
    teacher = np.maximum(episodes_of["teacher"]["cost"], 1e-9)
    return {
        variant: {
            "cost_vs_teacher": (row["cost"] / teacher).reshape(len(names), episodes).mean(axis=1),
            "mean_cost": np.asarray(row["cost"]).reshape(len(names), episodes).mean(axis=1),
            "overload_steps": float(row["overload_steps"].mean()),
            "blackouts": float(row["blackouts"].mean()),
        }
        for variant, row in episodes_of.items()
    }


def format_rows(rows: dict, names) -> str:
    header = f"{'variant':<22}" + "".join(f"{n[:12]:>13}" for n in names)
    lines = [header + "  overloads  blackouts"]
    for variant, row in rows.items():
        cells = "".join(f"{r:>13.4f}" for r in row["cost_vs_teacher"])
        lines.append(
            f"{variant:<22}{cells}  {row['overload_steps']:>9.2f}  {row['blackouts']:>9.2f}"
        )
    if "teacher" in rows:
        cells = "".join(f"{c:>13.0f}" for c in rows["teacher"]["mean_cost"])
        lines.append(f"{'teacher mean cost $':<22}{cells}")
    return "\n".join(lines)


def main(argv, flag) -> None:
    del argv
    with usage_errors(ValueError):
        check_flags(flag)
    from envs.sim import scenarios

    checkpoint_dir = Path(flag["run_dir"].value) / "checkpoints"
    names = flag["scenarios"].value or list(scenarios.scenario_names())
    print(f"{checkpoint_dir}; {describe_line(describe())}", flush=True)
    for step in [int(s) for s in flag["steps"].value] or [None]:
        with usage_errors(FileNotFoundError, ValueError):  # no such run or step, a bad config
            rows = ablate(
                checkpoint_dir,
                step,
                names,
                flag["episodes"].value,
                flag["eval_seed"].value,
                env_overrides(flag),
            )
        print(f"\ncheckpoint {'latest' if step is None else step}\n{format_rows(rows, names)}")
        sys.stdout.flush()


if __name__ == "__main__":
    _flags = define_flags()
    app.run(lambda argv: main(argv, _flags))
