"""Evaluation CLI: from a checkpoint directory alone to the table, JSON, figures and HTML."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib import image as mpimg

from envs.config import default_env_config, with_defaults
from envs.env import make_env
from envs.evaluation import metrics, registry, suite
from envs.opf.controls import MYOPIC_RATING_MARGIN
from envs.sim import scenarios
from launch import evaluate, evaluation, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _tiny_checkpoint(run_dir, env_overrides=None, dropped_env_fields=()):
    """A freshly initialised policy saved with the learner's own checkpointer (its env config
    the default one with ``env_overrides``, less ``dropped_env_fields``: a config stored
    before those fields existed)."""
    import ml_collections

    from learner.checkpoint import Checkpointer
    from learner.config import default_learner_config
    from learner.learner import make_optimiser
    from learner.policy import make_policy
    from learner.types import LearnerState

    config = ml_collections.ConfigDict()
    config.env = default_env_config()
    config.env.horizon = 8
    config.env.update(env_overrides or {})
    for name in dropped_env_fields:
        del config.env[name]
    config.learner = default_learner_config()
    config.learner.update(hidden_size=16, num_heads=2, num_encoder_layers=1)
    env, env_params = make_env(with_defaults(config.env))
    spec = env.spec(env_params)
    policy = make_policy(config.learner, spec)
    params = policy.init(jax.random.key(0))
    state = LearnerState(
        params=params,
        opt_state=make_optimiser(config.learner).init(params),
        norm_state=policy.init_norm_state(),
        key=jax.random.key_data(jax.random.key(1)),
        update_step=jnp.ones((), jnp.int32),
        skipped_updates=jnp.zeros((), jnp.int32),
    )
    checkpointer = Checkpointer(run_dir / "checkpoints", config.learner, spec, config)
    checkpointer.save(state)
    checkpointer.close()
    return run_dir


def _write_training_events(run_dir):
    tensorboardx = pytest.importorskip("tensorboardX")
    writer = tensorboardx.SummaryWriter(str(run_dir / "tensorboard"))
    for step in range(3):
        writer.add_scalar("train/episode_return", float(step), step)
    writer.close()


def assert_real_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 5_000
    assert np.var(mpimg.imread(path)[..., :3]) > 1e-4


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    run_dir = _tiny_checkpoint(tmp_path_factory.mktemp("run"))
    _write_training_events(run_dir)
    results = evaluation.run_evaluation(
        run_dir,
        ("normal", "cascading_failure"),
        episodes=2,
        horizon=6,
        baseline_names=("do_nothing", "myopic_opf"),
        render_episode=1,
        decision_batches=(3,),  # one batch: each timed program compiles once
        oracle_workers=1,  # the pool's path, with one process to start (each imports JAX)
    )
    return run_dir, results


def test_evaluation_runs_from_the_directory_alone(evaluated):
    run_dir, _ = evaluated
    stored = json.loads((run_dir / "eval" / "evaluation.json").read_text())
    capacity = float(np.sum(make_env(default_env_config())[1].devices.storage_emax))
    assert stored["scenarios"].keys() == {"normal", "cascading_failure"}
    assert stored["myopic_rating_margin"] == MYOPIC_RATING_MARGIN
    value = stored["stored_energy_value"]
    assert value > 0
    for rows in stored["scenarios"].values():
        assert set(rows) == {"policy", "do_nothing", "myopic_opf", "oracle"}
        assert rows["oracle"]["gap_percent"] == pytest.approx(0.0, abs=1e-9)
        oracle_cost = np.array(rows["oracle"]["episode_cost"])
        for method in ("policy", "do_nothing", "myopic_opf"):
            cost = np.array(rows[method]["episode_cost"])
            assert cost.shape == (2,) and np.all(np.isfinite(cost))
            assert rows[method]["steps"] == 6 or rows[method]["blackouts"] > 0
            gap = 100.0 * np.mean(cost / oracle_cost - 1.0)
            assert rows[method]["gap_percent"] == pytest.approx(gap, rel=1e-9, abs=1e-9)
        # the energy left in the batteries: reported for every method, the oracle's included
        for method in ("policy", "do_nothing", "myopic_opf", "oracle"):
            left = rows[method]["per_episode"]["stored_end_mwh"]
            assert len(left) == 2 and all(-1e-3 <= e <= capacity + 1e-3 for e in left)
        # do-nothing never moves a battery: it ends with what it started with
        do_nothing = rows["do_nothing"]["per_episode"]
        np.testing.assert_allclose(
            do_nothing["stored_end_mwh"], do_nothing["stored_start_mwh"], atol=1e-3
        )
        # every method's cost, the oracle's included, holds what its batteries gave up
        for method in ("policy", "do_nothing", "myopic_opf", "oracle"):
            episode = rows[method]["per_episode"]
            gave_up = np.subtract(episode["stored_start_mwh"], episode["stored_end_mwh"])
            np.testing.assert_allclose(
                episode["stored_energy_cost"], value * gave_up, rtol=1e-9, atol=1e-6
            )
    table = (run_dir / "eval" / "evaluation.txt").read_text()
    assert "cascading_failure" in table and "myopic_opf" in table and "stored_end_mwh" in table
    assert f"gave up over the episode at {value:.1f} $/MWh" in table


def test_each_method_is_set_against_the_scenarios_best_causal_baseline(evaluated):
    run_dir, results = evaluated
    for rows in results["scenarios"].values():
        best = min(("do_nothing", "myopic_opf"), key=lambda name: rows[name]["cost"])
        for row in rows.values():
            assert row["best_causal"] == best  # a baseline, never the policy or the oracle
            assert row["vs_best_causal"] == pytest.approx(row["cost"] / rows[best]["cost"])
        assert rows[best]["vs_best_causal"] == pytest.approx(1.0)
    table = (run_dir / "eval" / "evaluation.txt").read_text()
    assert "vs_best_causal" in table and "the best causal baseline" in table


def test_the_best_causal_baseline_is_the_cheapest_baseline_that_ran():
    summary = {
        "policy": {"cost": 80.0},  # cheapest, but learned: not a reference
        "myopic_opf": {"cost": 110.0},
        "lookahead_opf": {"cost": 100.0},
        "oracle": {"cost": 90.0},
    }
    assert metrics.against_best_causal(summary, registry.BASELINES) == "lookahead_opf"
    assert summary["policy"]["vs_best_causal"] == pytest.approx(0.8)
    assert summary["myopic_opf"]["vs_best_causal"] == pytest.approx(1.1)
    assert summary["oracle"]["vs_best_causal"] == pytest.approx(0.9)
    assert metrics.against_best_causal({"policy": {"cost": 1.0}}, registry.BASELINES) is None


def test_the_evaluation_reports_decision_time_beside_one_opf_solve(evaluated):
    run_dir, results = evaluated
    times = results["decision_time"]
    assert set(times) == {"3"}
    for row in times.values():
        assert set(row) == {"network_us", "decision_us", "myopic_opf_us"}
        assert all(np.isfinite(v) and v > 0 for v in row.values())
    table = (run_dir / "eval" / "evaluation.txt").read_text()
    assert "decision time per grid" in table
    for bad in (["0"], ["x"]):
        with pytest.raises(ValueError, match="--decision_batches"):
            evaluate.decision_batch_list(bad)
    assert evaluate.decision_batch_list(["1", "1024"]) == (1, 1024)


def test_report_has_every_figure_and_the_html_references_them(evaluated):
    run_dir, _ = evaluated
    folder = run_dir / "eval"
    page = (folder / "report.html").read_text()
    for name in report.FIGURES:
        assert_real_png(folder / f"{name}.png")
        assert f'src="{name}.png"' in page
    assert (folder / "episode_normal_1.gif").read_bytes()[:3] == b"GIF"


def test_checkpoint_paths_resolve_to_the_run(evaluated):
    run_dir, _ = evaluated
    step_dirs = [p for p in (run_dir / "checkpoints").iterdir() if p.name.isdigit()]
    for path in (run_dir, run_dir / "checkpoints", step_dirs[0]):
        checkpoint_dir, _, resolved_run = evaluation.resolve_checkpoint(path)
        assert checkpoint_dir == (run_dir / "checkpoints").resolve()
        assert resolved_run == run_dir.resolve()
    with pytest.raises(FileNotFoundError, match="not a directory"):
        evaluation.resolve_checkpoint(run_dir / "missing")


def test_bad_selections_are_rejected():
    with pytest.raises(ValueError, match="unknown scenarios"):
        registry.scenario_list("normal,blizzard")
    with pytest.raises(ValueError, match="unknown baselines"):
        registry.baseline_list("do_nothing,coin_flip")
    assert registry.scenario_list("all") == scenarios.scenario_names()


def test_negative_oracle_workers_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="oracle_workers"):
        evaluation.run_evaluation(tmp_path, oracle_workers=-1)


def test_a_myopic_margin_outside_zero_to_one_is_rejected(tmp_path):
    for margin in (-0.1, 1.0):
        with pytest.raises(ValueError, match="--myopic_rating_margin must lie in"):
            evaluation.run_evaluation(tmp_path, myopic_rating_margin=margin)


def test_the_library_stays_importable_from_the_command_line_module():
    from envs.evaluation import metrics

    assert evaluate.run_suite is suite.run_suite
    assert evaluate.OracleSolver is suite.OracleSolver
    assert evaluate.BASELINES is registry.BASELINES
    assert evaluate.summarise is metrics.summarise
    assert evaluate.run_evaluation is evaluation.run_evaluation
    assert evaluate.load_policy is evaluation.load_policy


def test_a_checkpoint_stored_before_an_env_field_existed_restores_with_its_default(tmp_path):
    from learner.checkpoint import restore_for_eval

    run_dir = _tiny_checkpoint(tmp_path, dropped_env_fields=("unit_offers", "overload_weight"))
    config, _, _, spec = restore_for_eval(run_dir / "checkpoints")
    assert config.env.unit_offers == "per_unit" and config.env.overload_weight == 1.0
    env, params = make_env(config.env)
    assert env.spec(params).action_dim == spec.action_dim


def test_a_policy_acts_in_the_env_it_is_evaluated_on(tmp_path, monkeypatch):
    """``load_policy(env_config=...)``: the policy's actions are read by the env it is
    evaluated on (an evaluation with env overrides), not only the one it trained on."""
    from learner import validation

    run_dir = _tiny_checkpoint(tmp_path, env_overrides={"action_interface": "bids"})
    acting_in = []
    real = validation.greedy_acting
    monkeypatch.setattr(
        validation,
        "greedy_acting",
        lambda env, env_params, policy: (
            acting_in.append(env_params) or real(env, env_params, policy)
        ),
    )
    config, *_ = evaluation.load_policy(run_dir / "checkpoints", None)
    evaluated = config.env.copy_and_resolve_references()
    evaluated.alarm_margin = 0.05
    evaluation.load_policy(run_dir / "checkpoints", None, env_config=evaluated)
    assert [p.consts.alarm_margin for p in acting_in] == [0.0, 0.05]


def test_the_table_keeps_a_long_method_name_apart_from_its_numbers():
    row = {metric: 1.0 for metric in evaluation.TABLE_METRICS}
    results = {"scenarios": {"normal": {"policy": row, "myopic_opf_valued": row}}}
    lines = evaluation.format_table(results).splitlines()
    valued = next(line for line in lines if line.startswith("myopic_opf_valued"))
    policy = next(line for line in lines if line.startswith("policy"))
    assert valued.split()[:2] == ["myopic_opf_valued", "1.00"]
    assert len(valued) == len(policy) == len(lines[1])  # every row under the header's columns


def test_a_policys_teacher_joins_the_default_baselines_and_a_named_list_is_taken_as_given(
    monkeypatch,
):
    from absl import flags
    from absl.testing import flagsaver

    bids = {"action_interface": "bids", "storage_bid_base": "forecast_to_day_end"}
    assert registry.with_policy_references(("myopic_opf",), bids) == (
        "myopic_opf",
        "myopic_opf_to_day_end",
    )
    # a base means nothing without bids; the alarm rule's OPF joins once
    alarm = {
        "action_interface": "setpoints",
        "storage_bid_base": "forecast_price",
        "alarm_margin": 0.05,
    }
    assert registry.with_policy_references(("myopic_opf_alarm",), alarm) == ("myopic_opf_alarm",)
    assert registry.with_policy_references((), alarm) == ("myopic_opf_alarm",)
    assert registry.with_policy_references(("myopic_opf",), {"action_interface": "bids"}) == (
        "myopic_opf",
    )

    asked = []
    monkeypatch.setattr(evaluate, "run_evaluation", lambda *a, **kw: asked.append(kw) or {})
    monkeypatch.setattr(evaluate, "format_table", lambda results: "")
    for argv in (
        ["evaluate", "--checkpoint=RUN"],
        ["evaluate", "--checkpoint=RUN", "--baselines="],
    ):
        with flagsaver.flagsaver():
            flags.FLAGS(argv)
            evaluate.main(["evaluate"])
    assert [kw["policy_references"] for kw in asked] == [True, False]
