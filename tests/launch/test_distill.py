"""Distillation: from a bid policy's checkpoint to a student that decides without a QP, judged
beside it; the student's decoding; the folder written whole or not at all."""

import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.action_interface import offer_prices, offer_scales, price_offsets
from envs.env import GridEnv, make_env
from envs.opf.controls import MYOPIC_RATING_MARGIN, opf_controls
from envs.sim import scenarios
from envs.sim.dispatch import action_map, controls_to_action
from launch import distillation as distill
from learner.distill import (
    Student,
    dispatch_of,
    dispatch_shift,
    fit,
    normalised_dispatch,
    student_outputs,
)
from tests.batched_env import reset_to_scenario_batch
from tests.launch.test_evaluate import _tiny_checkpoint

SCENARIOS = ("normal", "cascading_failure")


def _bid_checkpoint(run_dir, action_interface="bids"):
    from configs.default import get_config

    preset = get_config()
    return _tiny_checkpoint(
        run_dir,
        env_overrides={
            "action_interface": action_interface,
            "bid_scale": preset.env.bid_scale,
            "storage_bid_scale": preset.env.storage_bid_scale,
        },
    )


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    run_dir = _bid_checkpoint(tmp_path_factory.mktemp("run"))
    results = distill.run_distillation(
        run_dir,
        scenario_names=SCENARIOS,
        episodes=3,
        horizon=8,
        hidden=16,
        layers=1,
        epochs=3,
        eval_episodes=2,
        decision_batches=(2,),
        dagger_rounds=1,
    )
    return run_dir, results


@pytest.mark.slow  # the fixture collects, fits, evaluates and times: over a minute on 2 cores
def test_the_run_writes_the_student_the_table_and_the_targets(distilled):
    run_dir, results = distilled
    out = run_dir / "distilled"
    assert sorted(p.name for p in out.iterdir()) == [
        "distilled.json",
        "distilled.txt",
        "student.json",
        "student.msgpack",
    ]
    assert json.loads((out / "distilled.json").read_text())["case"] == "ieee14"
    # round 0 the bid policy drives, round 1 the distilled policy; the bid policy labels both
    rounds = results["training"]["rounds"]
    assert [r["samples"] for r in rounds] == [len(SCENARIOS) * 3 * 8 * k for k in (1, 2)]
    assert results["training"]["samples"] == rounds[-1]["samples"]
    for scenario in SCENARIOS:
        assert set(results["scenarios"][scenario]) == {
            "bid_policy",
            "distilled",
            "student_alone",
            "myopic_opf",
        }
        for row in results["scenarios"][scenario].values():
            assert np.isfinite(row["cost"]) and row["cost"] > 0
    timing = results["decision_time"]["distilled"]["2"]
    assert 0 < timing["network_us"] and 0 < timing["decision_us"] and 0 < timing["myopic_opf_us"]
    assert results["correction"]["correction_margin"] == distill.CORRECTION_MARGIN
    assert results["correction"]["resort_moves"] == distill.RESORT_MOVES
    names = [check["target"] for check in results["targets"]]
    assert names[0].startswith("batch 2: decisions >= 100x")
    assert "normal: cost <= 1.01 x the bid policy's" in names
    text = (out / "distilled.txt").read_text()
    assert "decision time per grid" in text and "targets" in text


def test_the_saved_student_gives_the_same_outputs(distilled):
    run_dir, _ = distilled
    student, params, spec = distill.load_student(run_dir / "distilled")
    assert spec["target"] == distill.DEFAULT_TARGET  # stored for whoever decodes it
    features = jax.random.normal(jax.random.key(3), (5, spec["features"]))
    again = student_outputs(student, params, features)
    assert again.shape == (5, spec["outputs"]) and bool(jnp.all(jnp.isfinite(again)))
    # the stored scaling is the fit's, not the template's zeros and ones
    assert float(jnp.abs(params.feature_std - 1.0).max()) > 1e-3


def test_an_existing_output_folder_is_refused_and_left_alone(distilled):
    run_dir, _ = distilled
    before = (run_dir / "distilled" / "student.msgpack").read_bytes()
    with pytest.raises(distill.DistillError, match="exists"):
        distill.run_distillation(run_dir, scenario_names=("normal",), episodes=1, horizon=4)
    assert (run_dir / "distilled" / "student.msgpack").read_bytes() == before


def test_a_policy_that_does_not_bid_is_refused(tmp_path):
    run_dir = _bid_checkpoint(tmp_path, action_interface="setpoints")
    with pytest.raises(distill.DistillError, match="action_interface='setpoints'"):
        distill.run_distillation(run_dir, scenario_names=("normal",), episodes=1, horizon=4)
    assert not (run_dir / "distilled").exists()


def test_bad_counts_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(distill.DistillError, match="--epochs must be >= 1"):
        distill.run_distillation(tmp_path, epochs=0)
    with pytest.raises(distill.DistillError, match="--target='bids'"):
        distill.run_distillation(tmp_path, target="bids")
    with pytest.raises(distill.DistillError, match="--correction_margin must lie in"):
        distill.run_distillation(tmp_path, correction_margin=0.5)
    with pytest.raises(distill.DistillError, match="--resort_moves must be >= 1, got 0"):
        distill.run_distillation(tmp_path, resort_moves=0)


@pytest.fixture(scope="module")
def peak_states():
    from configs.default import get_config

    _, params = make_env(get_config().env)
    keys = scenarios.eval_keys("peak_demand", 6, seed=5)
    scenario = jnp.int32(scenarios.scenario_id("peak_demand"))
    _, state = reset_to_scenario_batch(keys, params, scenario)
    return params, state


@pytest.fixture(scope="module")
def peak_clearing(peak_states):
    """The clearing QP of those states under given price offsets [B, G + S]: one program for
    the tests below."""
    from envs.opf import step_qp

    params, _ = peak_states
    qp = lambda s, offsets: step_qp.solve_myopic_opf(s, params, MYOPIC_RATING_MARGIN, offsets)  # noqa: E731
    return jax.jit(jax.vmap(qp))


@pytest.fixture(scope="module")
def offers_decision(peak_states):
    """The offers target's decision (a copper-plate clearing and the correction) of offers
    [B, G + S] on those states, as ``distilled_act`` and ``cleared_offers_act`` take it after
    their student's or bid policy's outputs: one program for the tests below."""
    params, _ = peak_states
    return jax.jit(jax.vmap(distill.distilled_decision(params, "offers", 4, 1, corrected=True)))


def test_a_bid_clearings_dispatch_survives_the_collection_decoding(peak_states, peak_clearing):
    """The dispatch the collection reads from a setpoint action is what the clearing of some
    bids chose, and a residual student that outputs its residual label decides its batteries'
    part again (its units move only where the merit order overloads a branch: tested in
    tests/envs/opf/test_ptdf_correction.py)."""
    params, state = peak_states
    grid, n_storage = params.grid, params.devices.storage_bus.shape[0]
    amap = action_map(params.layout, grid.n_gen, n_storage, grid.n_bus)
    shape = params.layout.action_mask.shape
    residual_decision = distill.distilled_decision(params, "residual", 4, 1, corrected=False)
    n_offers = grid.n_gen + n_storage
    bids = offer_scales(params) * jnp.where(jnp.arange(n_offers) % 2 == 0, 0.5, -0.5)

    solved = peak_clearing(state, jnp.broadcast_to(bids, (state.pg.shape[0], n_offers)))

    def one(solved, s):
        action = controls_to_action(amap, opf_controls(solved, s, params), shape)
        read = distill.cleared_dispatch(action, s, params)
        batched = jax.tree_util.tree_map(lambda x: x[None], (action, s))
        residual = distill.residual_labels(None, batched[1], batched[0], None, params)[0]
        again = distill.cleared_dispatch(residual_decision(residual, s), s, params)
        expected = normalised_dispatch(solved.pg, solved.storage, s, params)
        return read, expected, residual, again

    read, expected, residual, again = jax.jit(jax.vmap(one))(solved, state)
    np.testing.assert_allclose(read, expected, atol=2e-3)
    assert float(jnp.abs(residual).max()) > 0.05  # the bids moved the dispatch off the merit order
    np.testing.assert_allclose(again[:, grid.n_gen :], read[:, grid.n_gen :], atol=2e-3)
    # and the student's decoding inverts the normalisation
    pg, storage = jax.vmap(dispatch_of, in_axes=(0, 0, None))(read, state, params)
    again = jax.vmap(normalised_dispatch, in_axes=(0, 0, 0, None))(pg, storage, state, params)
    np.testing.assert_allclose(again, read, atol=1e-5)


def test_a_residual_in_mw_is_the_difference_of_two_dispatches(peak_states):
    params, state = peak_states
    devices = params.devices
    # minimum outputs above zero, so that a range and a maximum differ
    params = params.replace(devices=devices.replace(pmin=0.2 * devices.pmax))
    devices, one = params.devices, jax.tree_util.tree_map(lambda x: x[0], state)
    draw = partial(jax.random.uniform, shape=devices.pmax.shape)
    high = jnp.where(devices.is_renewable, one.available, devices.pmax)
    low = jnp.where(devices.is_renewable, 0.0, devices.pmin)
    pg = [low + (high - low) * draw(jax.random.key(k)) for k in (1, 2)]
    storage = [devices.storage_pmax * (2 * k - 3) * 0.6 for k in (1, 2)]  # -0.6, +0.6 of Pmax
    residual = normalised_dispatch(pg[0], storage[0], one, params) - normalised_dispatch(
        pg[1], storage[1], one, params
    )
    expected = jnp.concatenate([pg[0] - pg[1], storage[0] - storage[1]])
    np.testing.assert_allclose(dispatch_shift(residual, one, params), expected, atol=1e-3)


def test_fit_learns_a_smooth_map_and_scores_what_it_held_back():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 6)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(6, 3))).astype(np.float32)
    result = fit(x, y, Student(32, 2, 3), epochs=25, batch_size=128, learning_rate=3e-3)
    assert result.train_loss[-1] < 0.2 * result.train_loss[0]
    assert result.validation_loss < 0.05
    with pytest.raises(ValueError, match="must pair up"):
        fit(x, y[:10], Student(8, 1, 3), epochs=1)


def test_the_command_line_names_a_bad_checkpoint_in_one_line_and_exits_2(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "no_such_run"
    done = subprocess.run(
        [sys.executable, "-m", "launch.distill", f"--checkpoint={missing}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.startswith("launch.distill:")]
    assert lines == [f"launch.distill: --checkpoint {missing} is not a directory"]
    assert not missing.exists()


def test_offer_labels_are_the_bids_and_the_offers_clear_to_a_balanced_dispatch(
    peak_states, offers_decision
):
    params, state = peak_states
    batch = state.pg.shape[0]
    shape = params.layout.action_mask.shape
    actions = jax.random.uniform(jax.random.key(1), (batch, *shape), minval=-1.0, maxval=1.0)
    label = distill.offer_labels(lambda obs, args: actions)
    labels = label(None, state, None, (None,), params)
    offsets = jax.vmap(price_offsets, in_axes=(0, None))(actions, params)
    np.testing.assert_allclose(labels * offer_scales(params)[None, :], offsets, atol=1e-4)
    assert float(jnp.abs(labels).max()) > 0.1  # the bids are read, not zeros
    # the offers target's decision, from an unfitted student (bids near zero), clears a
    # dispatch that meets the load and never over-supplies (the dispatch target's decision
    # runs in the whole-run fixture above)
    n_out = params.grid.n_gen + params.devices.storage_bus.shape[0]
    student = Student(8, 1, n_out)
    obs = jax.vmap(lambda s: GridEnv().observe(s, params))(state)
    student_params = distill.student_template(student, obs.global_state.shape[-1])
    action = offers_decision(student_outputs(student, student_params, obs.global_state), state)
    read = jax.vmap(distill.cleared_dispatch, in_axes=(0, 0, None))(action, state, params)
    pg, storage = jax.vmap(dispatch_of, in_axes=(0, 0, None))(read, state, params)
    served = pg.sum(1) + storage.sum(1)
    load = jnp.sum(state.demand, axis=1) + jnp.sum(params.grid.bus_gs)
    assert bool(jnp.all(jnp.isfinite(served) & (served <= load + 0.5)))
    assert float(jnp.min(served / load)) > 0.97


def test_the_bid_policys_offers_cleared_without_the_qp_are_the_qps_dispatch(
    peak_states, peak_clearing, offers_decision
):
    """``cleared_offers_act``'s decision: a student that imitated the bids exactly. Where no
    branch binds, the copper plate its offers clear on is the clearing QP, so the two
    dispatches agree."""
    params, state = peak_states
    batch, shape = state.pg.shape[0], params.layout.action_mask.shape
    actions = jax.random.uniform(jax.random.key(1), (batch, *shape), minval=-1.0, maxval=1.0)
    labels = distill.offer_labels(lambda obs, args: actions)(None, state, None, (None,), params)
    action = offers_decision(labels, state)
    read = jax.vmap(distill.cleared_dispatch, in_axes=(0, 0, None))(action, state, params)
    pg, storage = jax.vmap(dispatch_of, in_axes=(0, 0, None))(read, state, params)
    # what the env's clearing offers: the bids on the preset's base (the forecast's price)
    offers = jax.vmap(offer_prices, in_axes=(0, 0, None))
    bid = peak_clearing(state, offers(actions, state, params))
    zero = peak_clearing(state, offers(0.0 * actions, state, params))
    assert bool(jnp.all(bid.converged))
    np.testing.assert_allclose(pg, bid.pg, atol=0.5)
    np.testing.assert_allclose(storage, bid.storage, atol=0.5)
    moved = jnp.maximum(
        jnp.abs(bid.pg - zero.pg).max(1), jnp.abs(bid.storage - zero.storage).max(1)
    )
    assert float(moved.max()) > 10.0  # the bids move the dispatch: they are read, not dropped
