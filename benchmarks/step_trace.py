"""Step by step, where does a checkpoint's team leave its teacher on a day? The greedy team and
the teacher (zero actions: under ``bids``, every device offers at cost) on the same days, with
per step the highest branch loading, the branches above 90 % of rating, the branches out of
service, the energy stored and the energy unserved and, under ``bids``, whether the step's
clearing converged (else the env dispatched the merit order, which ignores the network) and
the batteries' bid over the price it is added to (``env.storage_bid_base``).

Before the steps, each day's cost as the evaluation counts it, split into what it pays for
(generation, curtailment, unserved energy, the stored energy given up), the team's and the
teacher's, and the team's operating cost over the teacher's by blocks of the day: where the
team's premium or saving is made, and whether its batteries bought it: the energy they held
and, under ``bids``, what the team bid on it (benchmarks/README.md, "The policy's battery bid is
a clock").

    python -m benchmarks.step_trace --run_dir=RUN --step=840 --scenario=cascading_failure \
        [--episodes=2] [--eval_seed=2] [--shown=0:13]

The days are a development set (``--eval_seed``, default 2, the runs' validation set, whose
checkpoint metrics say which days go wrong); 0 and 1, the held-out sets, are refused. For each
day it prints the blackout step, the steps whose clearing did not converge, and the per-step
rows of ``--shown`` (benchmarks/README.md, "What blacks out a cascading day").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from absl import app, flags

from benchmarks.agent_ablation import check_run_flags, masked_acting
from benchmarks.harness import describe, describe_line, usage_errors
from envs.evaluation import metrics

LOADED = 0.9  # a branch above this share of its rating counts as loaded
BLOCKS = 8  # blocks of the day in the cost difference (3 hours each on a whole day)
COST_PARTS = ("generation", "curtailment", "unserved", "stored energy")


def define_flags() -> dict:
    """The command's flags, defined when it runs (``__main__``), not on import."""
    return {
        "run_dir": flags.DEFINE_string("run_dir", None, "Run directory (its checkpoints/)."),
        "step": flags.DEFINE_integer("step", None, "Checkpoint step; default: the latest."),
        "scenario": flags.DEFINE_string("scenario", "cascading_failure", "The days' scenario."),
        "episodes": flags.DEFINE_integer("episodes", 2, "Whole-day episodes."),
        "eval_seed": flags.DEFINE_integer(
            "eval_seed", 2, "Episode set (scenarios.eval_keys); 0 and 1 are refused."
        ),
        "shown": flags.DEFINE_string("shown", "0:13", "Steps of the per-step rows, FIRST:END."),
    }


def parse_shown(text: str) -> tuple[int, int]:
    first, sep, end = text.partition(":")
    if (
        not sep
        or not first.strip().isdigit()
        or not end.strip().isdigit()
        or int(end) <= int(first)
    ):
        raise ValueError(f"--shown={text!r}: expected FIRST:END with 0 <= FIRST < END")
    return int(first), int(end)


def check_flags(flag) -> None:
    """A clear error for flags that cannot run."""
    from envs.sim import scenarios

    check_run_flags(flag)
    if flag["scenario"].value not in scenarios.scenario_names():
        raise ValueError(f"--scenario: unknown {flag['scenario'].value!r}")
    parse_shown(flag["shown"].value)


def trace(checkpoint_dir: Path, step, scenario: str, episodes: int, eval_seed: int) -> dict:
    """{"team" | "teacher": {name: [T, B] array}} with ``max_loading``, ``loaded`` (branches
    above ``LOADED``), ``out`` (branches out of service), ``blackout``, ``converged`` (the
    step's clearing; all True where the interface clears no bids), ``stored_mwh`` (after the
    step), ``battery_bid`` ($/MWh, the batteries' mean bid over their base, the price the
    clearing adds it to; NaN where the interface clears no bids or the grid has no battery),
    ``unserved_mwh``, ``demand_mwh``, and the step's cost in the parts
    ``cost_breakdown`` sums: ``generation`` (the units' and the slack's), ``curtailment`` and
    ``unserved`` ($, load islanded charged at VOLL as the evaluation does), and their sum as the
    evaluation charges the step, ``step_cost``; plus ``"stored_start_mwh"`` [B],
    ``"stored_value"`` ($/MWh, the evaluation's price of stored energy) and ``"voll"``."""
    import jax
    import jax.numpy as jnp

    from envs.action_interface import BID_QP_ITERATIONS, offer_prices, price_offsets
    from envs.env import GridEnv, make_env, reset_to_scenario
    from envs.evaluation import rollout as rollout_lib
    from envs.evaluation.suite import episode_horizon
    from envs.opf import controls as opf_controls
    from envs.opf import step_qp
    from envs.opf.storage_value import stored_energy_value
    from envs.sim import scenarios
    from launch.evaluation import load_policy

    config, _, _, args, network = load_policy(checkpoint_dir, step)
    env, p = make_env(config.env)
    act = masked_acting(network, env, p)
    bids = config.env.action_interface == "bids"

    def converged(action, state):
        if not bids:
            return jnp.bool_(True)
        offers = offer_prices(action, state, p)
        solved = step_qp.solve_myopic_opf(
            state, p, opf_controls.MYOPIC_RATING_MARGIN, offers, max_iter=BID_QP_ITERATIONS
        )
        return solved.converged

    n_units = p.grid.n_gen

    def battery_bid(action):
        if not bids or p.devices.storage_emax.shape[0] == 0:
            return jnp.float32(jnp.nan)
        return jnp.mean(price_offsets(action, p)[n_units:])

    @jax.jit
    def run(keys, scenario_ids, mask):
        horizon = episode_horizon(p, 0)
        _, state = jax.vmap(reset_to_scenario, in_axes=(0, None, 0))(keys, p, scenario_ids)
        obs = jax.vmap(GridEnv().observe, in_axes=(0, None))(state, p)
        step_keys = jax.vmap(rollout_lib.oracle.step_keys, in_axes=(0, None))(keys, horizon)
        env_step = jax.vmap(rollout_lib._env_step, in_axes=(0, 0, 0, 0, None))

        def body(carry, key):
            obs, state, cooldown = carry
            raw = network(obs, args) * mask[None, :, None]
            ok = jax.vmap(converged)(raw, state)
            setpoints = act(obs, state, None, (*args, mask))
            obs, state, _, info, topo = env_step(key, state, cooldown, setpoints, p)
            loading = jnp.abs(state.flow) / p.grid.branch_rating[None, :]
            row = {
                "max_loading": jnp.max(loading, -1),
                "loaded": jnp.sum(loading > LOADED, -1),
                "out": jnp.sum(~state.branch_in_service, -1),
                "blackout": info["blackout"],
                "converged": ok,
                "stored_mwh": jnp.sum(state.soc, -1),
                "battery_bid": jax.vmap(battery_bid)(raw),
                "unserved_mwh": info["unserved_energy_mwh"],
                "demand_mwh": info["demand_mw"] * p.consts.step_hours,
                "generation": info["gen_cost"] + info["slack_cost"],
                "curtailment": info["curtailment_cost"],
                "unserved": info["shed_cost"]
                + info["ufls_cost"]
                + p.consts.voll * info["island_unserved_mwh"],
                # what the evaluation charges the step, which the three parts must add up to
                "step_cost": info["cost"] + p.consts.voll * info["island_unserved_mwh"],
            }
            return (obs, state, topo.branch_cooldown), row

        carry = (obs, state, state.branch_cooldown)
        stored_start = jnp.sum(state.soc, -1)
        return stored_start, jax.lax.scan(body, carry, jnp.swapaxes(step_keys, 0, 1))[1]

    keys = scenarios.eval_keys(scenario, episodes, eval_seed)
    ids = jnp.full((episodes,), scenarios.scenario_id(scenario), jnp.int32)
    n_agents = p.layout.chosen_mask.shape[0]
    rows = {}
    for variant, m in (("team", 1.0), ("teacher", 0.0)):
        stored_start, rows[variant] = jax.device_get(run(keys, ids, jnp.full(n_agents, m)))
        rows[variant] = jax.tree.map(np.asarray, rows[variant])
    # the same days: the two variants start from the same stored energy
    rows["stored_start_mwh"] = np.asarray(stored_start, np.float64)
    rows["stored_value"] = float(stored_energy_value(p))
    rows["voll"] = float(p.consts.voll)
    return rows


def cost_breakdown(row: dict, stored_start: np.ndarray, stored_value: float, voll: float) -> dict:
    """{part: [B] $} each day's cost in ``COST_PARTS`` and their ``total``, by the evaluation's
    rules (``envs.evaluation.metrics``): each step's operating cost (``operating_cost``, the
    demand a blackout leaves for the rest of the day unserved at ``voll``), and the stored
    energy given up from reset to the day's last step at ``stored_value``."""
    after = metrics.after_blackout(row["blackout"])
    alive = 1.0 - after
    parts = {name: np.sum(alive * row[name], 0) for name in COST_PARTS[:3]}
    parts["unserved"] = parts["unserved"] + voll * np.sum(after * row["demand_mwh"], 0)
    stored_end = metrics.at_last_step(row["stored_mwh"], alive)
    parts["stored energy"] = metrics.stored_energy_cost(stored_start, stored_end, stored_value)
    parts["total"] = sum(parts[name] for name in COST_PARTS)
    return parts


def operating_cost(row: dict, voll: float) -> np.ndarray:
    """[T, B] $ each step pays (generation, curtailment and unserved energy); after a blackout,
    the step's demand at ``voll``."""
    after = metrics.after_blackout(row["blackout"])
    paid = sum(row[name] for name in COST_PARTS[:3])
    return (1.0 - after) * paid + after * voll * row["demand_mwh"]


def format_costs(rows: dict) -> str:
    """Each day's cost by part, the team's and the teacher's, then the team's operating cost
    over the teacher's by ``BLOCKS`` blocks of the day, the energy its batteries held and, where
    the team bid, the batteries' bid over its base (the teacher's is zero); the same blocks
    last as means over the days."""
    start, value, voll = rows["stored_start_mwh"], rows["stored_value"], rows["voll"]
    costs = {v: cost_breakdown(rows[v], start, value, voll) for v in ("team", "teacher")}
    lines = []
    for day in range(start.shape[0]):
        lines.append(f"day {day}: cost $ by part ({', '.join(COST_PARTS)}, total)")
        for variant, parts in costs.items():
            cells = "  ".join(f"{parts[name][day]:>11,.0f}" for name in (*COST_PARTS, "total"))
            lines.append(f"  {variant:<8} {cells}")
        lines.extend(block_lines(rows, [day]))
    lines.append(f"mean over the {start.shape[0]} days:")
    lines.extend(block_lines(rows, list(range(start.shape[0]))))
    return "\n".join(lines)


def block_lines(rows: dict, days: list[int]) -> list[str]:
    """The team's operating cost over the teacher's ($ a day), the energy each held (MWh) and
    the team's battery bid over its base ($/MWh) by ``BLOCKS`` blocks of the day, mean over
    ``days``."""
    voll = rows["voll"]
    extra = operating_cost(rows["team"], voll) - operating_cost(rows["teacher"], voll)
    blocks = np.array_split(np.arange(extra.shape[0]), BLOCKS)
    lines = [
        "  team - teacher, $ by block of the day: "
        + " ".join(f"{extra[b][:, days].sum(0).mean():+,.0f}" for b in blocks)
    ]
    for variant in ("team", "teacher"):
        held = rows[variant]["stored_mwh"][:, days]
        lines.append(
            f"  {variant} stored MWh by block: " + " ".join(f"{held[b].mean():.1f}" for b in blocks)
        )
    bid = rows["team"]["battery_bid"][:, days]
    if np.isfinite(bid).all():
        lines.append(
            "  team battery bid over its base, $/MWh by block: "
            + " ".join(f"{bid[b].mean():+.1f}" for b in blocks)
        )
    return lines


def format_trace(rows: dict, shown: tuple[int, int]) -> str:
    lines = []
    first, end = shown
    for variant in ("team", "teacher"):
        row = rows[variant]
        for day in range(row["blackout"].shape[1]):
            blackout = np.nonzero(row["blackout"][:, day])[0]
            failed = np.nonzero(~row["converged"][:, day])[0].tolist()
            ended = f"blackout at step {blackout[0]}" if blackout.size else "no blackout"
            lines.append(f"{variant}, day {day}: {ended}; clearing not converged at {failed}")
            lines.append("  step  max loading  loaded  out  stored MWh  unserved MWh")
            for t in range(first, min(end, row["blackout"].shape[0])):
                lines.append(
                    f"  {t:>4}  {row['max_loading'][t, day]:>11.2f}  "
                    f"{row['loaded'][t, day]:>6}  {row['out'][t, day]:>3}  "
                    f"{row['stored_mwh'][t, day]:>10.1f}  {row['unserved_mwh'][t, day]:>12.2f}"
                )
    return "\n".join(lines)


def main(argv, flag) -> None:
    del argv
    with usage_errors(ValueError):
        check_flags(flag)
    checkpoint_dir = Path(flag["run_dir"].value) / "checkpoints"
    print(f"{checkpoint_dir}; {describe_line(describe())}", flush=True)
    with usage_errors(FileNotFoundError, ValueError):  # no such run or step, a bad config
        rows = trace(
            checkpoint_dir,
            flag["step"].value,
            flag["scenario"].value,
            flag["episodes"].value,
            flag["eval_seed"].value,
        )
    print(format_costs(rows))
    print(format_trace(rows, parse_shown(flag["shown"].value)))


if __name__ == "__main__":
    _flags = define_flags()
    app.run(lambda argv: main(argv, _flags))
