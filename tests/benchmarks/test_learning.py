"""The time-to-quality benchmark's parts: seed aggregation, targets, wall clock, flags, keys."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from benchmarks import learning
from envs.config import default_env_config
from envs.evaluation.metrics import against_best_causal
from envs.evaluation.registry import BASELINES
from envs.sim import scenarios

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIX = learning.IEEE14_TARGETS.scenarios


def test_aggregate_is_mean_population_std_and_range_of_present_seeds():
    stats = learning.aggregate([1.0, 2.0, None, 6.0])
    assert stats["n"] == 3
    assert stats["mean"] == pytest.approx(3.0)
    assert stats["std"] == pytest.approx(np.std([1.0, 2.0, 6.0]))
    assert (stats["min"], stats["max"]) == (1.0, 6.0)
    assert learning.aggregate([None, None]) == {
        "mean": None,
        "std": None,
        "min": None,
        "max": None,
        "n": 0,
    }


def test_curve_point_aggregates_each_scenario_and_metric_over_seeds():
    row = lambda gap, blackouts: {  # noqa: E731
        "gap_percent": gap,
        "cost_vs_myopic_percent": gap - 2.0,
        "cost_vs_do_nothing_percent": -10.0,
        "unserved_mwh": 0.0,
        "overload_steps": 1.0,
        "blackouts": blackouts,
        "cost": 100.0 + gap,
    }
    seeds = [{"normal": row(2.0, 0.0)}, {"normal": row(4.0, 1.0)}, None]
    point = learning.curve_point(150.0, seeds)
    assert (point["time_s"], point["seeds"], point["of_seeds"]) == (150.0, 2, 3)
    normal = point["scenarios"]["normal"]
    assert normal["gap_percent"]["mean"] == pytest.approx(3.0)
    assert (normal["gap_percent"]["min"], normal["gap_percent"]["max"]) == (2.0, 4.0)
    assert normal["blackouts"]["mean"] == pytest.approx(0.5)
    assert normal["cost"]["mean"] == pytest.approx(103.0)
    assert learning.point_means(point)["normal"]["cost_vs_myopic_percent"] == pytest.approx(1.0)


def _rows(gap=2.0, cost=90.0, overloads=1.0, blackouts=0.0):
    policy = {
        s: {"gap_percent": gap, "cost": cost, "overload_steps": overloads, "blackouts": blackouts}
        for s in SIX
    }
    myopic = {s: {"cost": 100.0, "overload_steps": 2.0, "blackouts": 0.0} for s in SIX}
    return policy, myopic


def test_targets_are_met_when_every_check_holds():
    policy, myopic = _rows()
    checks = learning.check_targets(policy, myopic)
    assert len(checks) == 1 + 3 * len(SIX) + 3
    assert all(check["met"] is True for check in checks)
    assert learning.all_met(checks)


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"gap": 3.5}, "normal: gap to oracle %"),
        ({"cost": 100.5}, "emergency_response: cost <= 1.002 x myopic OPF"),
        ({"cost": 95.0}, "cascading_failure: cost <= 0.9 x myopic OPF"),
        ({"overloads": 3.0}, "peak_demand: overload_steps <= myopic OPF"),
        ({"blackouts": 0.5}, "renewable_intermittency: blackouts = 0"),
    ],
)
def test_targets_name_what_is_not_met(change, failing):
    policy, myopic = _rows(**change)
    checks = learning.check_targets(policy, myopic)
    assert failing in [c["target"] for c in checks if c["met"] is False]
    assert not learning.all_met(checks)


def test_the_ieee118_targets_ask_half_a_percent_of_the_teacher_and_no_gap():
    assert learning.targets_for("ieee118") is learning.IEEE118_TARGETS
    assert learning.targets_for("ieee14") is learning.IEEE14_TARGETS
    policy, myopic = _rows(cost=100.4, gap=50.0, overloads=9.0)
    checks = learning.check_targets(policy, myopic, learning.IEEE118_TARGETS)
    assert len(checks) == len(SIX) + 3 and learning.all_met(checks)
    policy, _ = _rows(cost=100.6)
    checks = learning.check_targets(policy, myopic, learning.IEEE118_TARGETS)
    failing = [c["target"] for c in checks if c["met"] is False]
    assert "normal: cost <= 1.005 x myopic OPF" in failing and not learning.all_met(checks)


def test_a_scenario_not_evaluated_is_not_measured_never_passed():
    policy, myopic = _rows()
    del policy["peak_demand"]
    checks = learning.check_targets(policy, myopic)
    unmeasured = {c["target"] for c in checks if c["met"] is None}
    assert "peak_demand: blackouts = 0" in unmeasured
    assert not learning.all_met(checks)


def test_time_to_quality_is_the_first_point_with_every_seed_meeting_the_targets():
    policy, myopic = _rows()
    bad, _ = _rows(gap=5.0)
    stats = lambda rows: {  # noqa: E731
        s: {k: {"mean": v} for k, v in metrics.items()} for s, metrics in rows.items()
    }
    points = [
        {"time_s": 100.0, "seeds": 1, "of_seeds": 2, "scenarios": stats(policy)},
        {"time_s": 200.0, "seeds": 2, "of_seeds": 2, "scenarios": stats(bad)},
        {"time_s": 300.0, "seeds": 2, "of_seeds": 2, "scenarios": stats(policy)},
        {"time_s": 700.0, "seeds": 2, "of_seeds": 2, "scenarios": stats(bad)},
    ]
    assert learning.time_to_quality(points, myopic, learning.IEEE14_TARGETS) == 300.0
    assert learning.verdict_point(points, learning.IEEE14_TARGETS)["time_s"] == 300.0


def _checkpoint(directory, step, init_epoch_s=None, mtime=None):
    path = directory / str(step)
    path.mkdir(parents=True)
    if init_epoch_s is not None:
        stamp = {"init_timestamp_nsecs": int(init_epoch_s * 1e9), "commit_timestamp_nsecs": 0}
        (path / "_CHECKPOINT_METADATA").write_text(json.dumps(stamp))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_checkpoint_times_are_save_starts_after_the_launch(tmp_path):
    start = 1_700_000_000.0
    _checkpoint(tmp_path, 50, init_epoch_s=start + 42.5, mtime=start + 90.0)
    _checkpoint(tmp_path, 100, init_epoch_s=start + 61.0)
    _checkpoint(tmp_path, 150, mtime=start + 80.0)  # no Orbax metadata: the folder's mtime
    (tmp_path / "200.orbax-checkpoint-tmp-7").mkdir()  # an unfinished save
    times = learning.checkpoint_times(tmp_path, start)
    assert list(times) == [50, 100, 150]
    assert times[50] == pytest.approx(42.5, abs=1e-3)
    assert times[100] == pytest.approx(61.0, abs=1e-3)
    assert times[150] == pytest.approx(80.0, abs=1e-3)


def test_each_grid_time_takes_the_latest_checkpoint_saved_by_then():
    assert learning.time_grid(600.0, 4) == [150.0, 300.0, 450.0, 600.0]
    times = {50: 120.0, 100: 260.0, 150: 300.0, 200: 610.0}
    assert learning.pick_checkpoints(times, [100.0, 150.0, 300.0, 600.0]) == [
        None,
        50,
        150,
        150,
    ]


def test_with_validation_each_grid_time_takes_the_best_checkpoint_saved_by_then(tmp_path):
    times = {40: 100.0, 80: 200.0, 120: 300.0, 160: 400.0, 170: 405.0}
    for step, ratio in {40: 1.002, 80: 0.97, 120: 0.99, 160: 0.97}.items():
        folder = tmp_path / str(step) / "metrics"
        folder.mkdir(parents=True)
        (folder / "metrics").write_text(json.dumps({"validation/cost_vs_teacher": ratio}))
    (tmp_path / "170").mkdir()  # the final checkpoint: saved at the stop, not validated
    scores = learning.checkpoint_scores(tmp_path, "validation/cost_vs_teacher")
    assert scores == {40: 1.002, 80: 0.97, 120: 0.99, 160: 0.97}
    grid = [50.0, 150.0, 250.0, 350.0, 450.0]
    # nothing by 50 s; the only one by 150 s; the lower ratio after; a tie goes to the newer
    assert learning.pick_checkpoints(times, grid, scores) == [None, 40, 80, 80, 160]
    assert learning.pick_checkpoints(times, grid, scores, minimise=False) == [
        None,
        40,
        40,
        40,
        40,
    ]
    assert learning.pick_checkpoints({10: 20.0}, [30.0], {}) == [10]  # none validated: latest


def test_launch_start_prefers_the_recorded_launch(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    os.utime(tmp_path / "config.json", (1234.0, 1234.0))
    start, source = learning.launch_start(tmp_path)
    assert start == pytest.approx(1234.0) and source.startswith("config.json")
    (tmp_path / learning.LAUNCH_RECORD).write_text(json.dumps({"start_epoch_s": 12.5}))
    assert learning.launch_start(tmp_path) == (12.5, "launch command")


def test_save_cadence_leaves_several_saves_per_evaluated_point():
    every = learning.save_cadence(600.0, 32 * 256, 8)
    saves = 600.0 * learning.ASSUMED_ENV_STEPS_PER_S / (32 * 256) / every
    assert saves >= learning.SAVES_PER_EVALUATED * 8
    assert learning.save_cadence(1.0, 10**9, 8) == 1


def test_overrides_are_normalised_for_the_launcher():
    got = learning.parse_overrides(["--config.learner.lr=1e-4 learner.hidden_size=64"])
    assert got == ("--config.learner.lr=1e-4", "--config.learner.hidden_size=64")
    with pytest.raises(learning.UsageError):
        learning.parse_overrides(["--seed"])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--seeds=0"], "--seeds"),
        (["--bogus=1"], "bogus"),
        (["--budget_s=-5"], "--budget_s"),
        (["--eval_seed=0"], "--eval_seed"),
        (["--override=--config.learner.no_such_field=1"], "no_such_field"),
        (["--override=--config.learner.batch_size=many"], "batch_size"),
        (["--select=best"], "validation_episodes"),
        (["--first_seed=-1"], "--first_seed"),
    ],
)
def test_bad_flags_exit_2_with_one_line_before_training(tmp_path, args, words):
    _assert_refused(tmp_path, args, words)


def _assert_refused(tmp_path, args, words):
    """The command exits 2 with one line naming ``words``, having written nothing."""
    out_dir = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.learning", f"--out_dir={out_dir}", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0]
    assert not out_dir.exists()  # nothing trained, nothing written


def test_eval_keys_default_set_is_unchanged_and_a_seed_gives_another():
    # The suite's keys as they were defined before the seed argument existed.
    base = jax.random.PRNGKey(scenarios.EVAL_SEED_BASE + 1000 * scenarios.scenario_id("normal"))
    suite = np.asarray(jax.random.split(base, 4))
    np.testing.assert_array_equal(scenarios.eval_keys("normal", 4), suite)
    np.testing.assert_array_equal(scenarios.eval_keys("normal", 4, 0), suite)
    other = np.asarray(scenarios.eval_keys("normal", 4, 1))
    assert other.shape == suite.shape
    assert not np.any(np.all(other[:, None] == suite[None], axis=-1))  # no episode shared
    np.testing.assert_array_equal(other, scenarios.eval_keys("normal", 4, 1))
    assert not np.array_equal(other, scenarios.eval_keys("normal", 4, 2))
    assert not np.array_equal(other, scenarios.eval_keys("peak_demand", 4, 1))


def test_evaluation_rolls_out_the_chosen_held_out_set(monkeypatch):
    from envs.evaluation import metrics, rollout, suite

    seen = {}

    def fake_rollout(params, policies, index, reset_keys, *rest):
        seen["keys"] = np.asarray(reset_keys)
        return "record"

    monkeypatch.setattr(rollout, "rollout", fake_rollout)
    monkeypatch.setattr(metrics, "episode_metrics", lambda record, params: {"cost": np.ones(3)})
    methods = {"a": None}
    suite.run_suite(None, methods, None, ("normal",), 3, 8, None, eval_seed=5)
    np.testing.assert_array_equal(seen["keys"], scenarios.eval_keys("normal", 3, 5))


def test_seed_counts_say_how_many_seeds_meet_each_target_alone():
    good, myopic = _rows()
    bad, _ = _rows(gap=5.0)
    counts = learning.seed_counts([good, bad, None], myopic, learning.IEEE14_TARGETS)
    names = [c["target"] for c in learning.check_targets(good, myopic)]
    assert counts[names.index("normal: gap to oracle %")] == 1
    assert counts[names.index("normal: blackouts = 0")] == 2


def test_relative_costs_are_ratios_of_the_scenarios_mean_costs():
    policy = {
        "cost": 110.0,
        "gap_percent": 12.0,
        "unserved_mwh": 0.5,
        "overload_steps": 2.0,
        "blackouts": 0.0,
        "trips": 1.0,
        "episode_cost": [20.0, 200.0],
        "std": 90.0,  # a summary's other keys are not the benchmark's
    }
    references = {"myopic_opf": {"cost": 100.0}, "do_nothing": {"cost": 200.0}}
    row = learning.relative_row(policy, references)
    assert row["cost_vs_myopic_percent"] == pytest.approx(10.0)
    assert row["cost_vs_do_nothing_percent"] == pytest.approx(-45.0)
    assert row["gap_percent"] == 12.0 and row["overload_steps"] == 2.0
    assert row["episode_cost"] == [20.0, 200.0] and "std" not in row
    assert learning.relative_row(policy, {})["cost_vs_myopic_percent"] is None


def test_the_stretch_target_sets_the_policy_against_the_cheapest_causal_baseline():
    references = {
        "normal": {
            "oracle": {"cost": 90.0},  # not causal: never the reference
            "do_nothing": {"cost": 120.0},
            "myopic_opf": {"cost": 100.0},
            "lookahead_opf": {"cost": 98.0},
        },
        "peak_demand": {"oracle": {"cost": 1.0}},  # no baseline ran: not measured
    }
    against_best_causal(references["normal"], BASELINES)  # as the evaluation suite marks them
    policy = {"normal": {"cost": 99.0}, "peak_demand": {"cost": 5.0}}
    checks = learning.check_stretch(policy, references, ("normal", "peak_demand"))
    normal, peak = checks
    assert normal["target"] == "normal: cost <= lookahead_opf (best causal)"
    assert normal["value"] == pytest.approx(99.0 / 98.0) and normal["met"] is False
    assert peak["met"] is None
    met = learning.check_stretch({"normal": {"cost": 97.0}}, references, ("normal",))
    assert met[0]["met"] is True
    results = {
        "runs": [],
        "targets": {
            "definition": {"time_limit_s": 600.0, "name": "ieee14 default preset"},
            "at_time_s": 600.0,
            "checks": [],
            "time_to_quality_s": None,
            "all_met": False,
            "stretch": checks,
        },
    }
    text = "\n".join(learning.report.format_targets(results))
    assert "best causal baseline" in text and "NOT MET" in text and "1.0102" in text


def test_the_lookahead_flag_an_alarm_margin_and_a_bid_base_add_their_baselines_to_the_references(
    tmp_path,
):
    base = dict(
        config_path="configs/default.py",
        overrides=(),
        seeds=(0,),
        budget_s=60.0,
        scenarios=("normal",),
        episodes=1,
        horizon=0,
        checkpoints=1,
        eval_seed=1,
        out_dir=tmp_path,
        from_runs=(),
        save_every_updates=0,
        cold_cache=True,
    )
    assert learning.Settings(**base).baseline_names == learning.BASELINE_NAMES
    ahead = learning.Settings(**base, lookahead=True).baseline_names
    assert ahead == (*learning.BASELINE_NAMES, "lookahead_opf")
    # a team that clears under the alarm rule is judged beside the OPF that runs it
    from benchmarks.learning.evaluation import reference_baselines
    from configs.ieee118 import get_config as ieee118_config

    settings = learning.Settings(**base)
    assert reference_baselines(settings, ieee118_config().env) == (
        *learning.BASELINE_NAMES,
        "myopic_opf_alarm",
    )
    assert reference_baselines(settings, default_env_config()) == learning.BASELINE_NAMES
    # a team whose batteries bid on a base is judged beside that base's zero bid, its teacher
    from configs.default import get_config as preset_config

    preset = preset_config().env
    assert preset.storage_bid_base == "forecast_to_day_end"  # its teacher is among the names
    assert "myopic_opf_to_day_end" in learning.BASELINE_NAMES
    assert reference_baselines(settings, preset) == learning.BASELINE_NAMES
    preset.storage_bid_base = "forecast_band"
    assert reference_baselines(settings, preset) == (
        *learning.BASELINE_NAMES,
        "myopic_opf_banded",
    )
    preset.action_interface = "setpoints"  # a base means nothing without bids
    assert reference_baselines(settings, preset) == learning.BASELINE_NAMES


@pytest.mark.parametrize("targets", [learning.IEEE14_TARGETS, learning.IEEE118_TARGETS])
def test_the_curves_plot_for_each_presets_targets(tmp_path, targets):
    """The ieee118 preset has no gap target: its panel has no target line (it crashed the
    plot, after the run's JSON was written)."""
    import dataclasses

    from benchmarks.learning.curve import METRICS

    stats = {"mean": 1.0, "std": 0.0, "min": 0.5, "max": 1.5, "n": 2}
    point = {key: stats for key, _ in METRICS}
    results = {
        "from_runs": True,
        "case": "ieee118",
        "runs": [{"run_dir": "runs/seed_0"}, {"run_dir": "runs/seed_1"}],
        "hardware": {
            "cpu": "test CPU",
            "usable_cores": 2,
            "jax": "0",
            "device": "1 x cpu",
            "backend": "cpu",
        },
        "settings": {"budget_s": 1800.0},
        "evaluation": {"scenarios": ["normal", "peak_demand"]},
        "curve": [
            {"time_s": t, "scenarios": {"normal": point, "peak_demand": point}} for t in (600, 1200)
        ],
        "targets": {"definition": dataclasses.asdict(targets)},
    }
    path = tmp_path / "learning.png"
    learning.report.plot_curves(results, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_trained_runs_take_only_env_overrides_for_their_evaluation(tmp_path):
    """``--from_runs`` evaluates runs already trained: an override of anything but the env
    is refused before anything runs, and an env override changes the evaluated env, checked
    as training checks it."""
    from benchmarks.learning.settings import with_env_overrides
    from envs.config import default_env_config

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    _assert_refused(
        tmp_path,
        [f"--from_runs={tmp_path / 'run'}", "--override=--config.learner.learning_rate=1e-4"],
        "only the evaluation's env",
    )

    trained = default_env_config()
    trained.action_interface = "bids"
    evaluated = with_env_overrides(trained, ("--config.env.alarm_margin=0.05",))
    assert evaluated.alarm_margin == 0.05 and trained.alarm_margin == 0.0
    assert with_env_overrides(trained, ()) is trained
    with pytest.raises(ValueError, match=r"env\.alarm_margin=0\.7 is invalid"):
        with_env_overrides(trained, ("--config.env.alarm_margin=0.7",))
    with pytest.raises(ValueError, match="no field"):
        with_env_overrides(trained, ("--config.env.no_such_field=1",))
