"""Checkpoints: round trip, bit-exact resume, last-k-plus-best retention, kill during save."""

import os
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from learner.checkpoint import Checkpointer, restore_for_eval, spec_from_json, spec_to_json
from learner.policy import make_policy
from tests.learner.fixtures import (
    BATCH,
    UNROLL,
    random_observation,
    random_trajectory,
    step_config,
    synthetic_state,
    tiny_learner,
    tiny_spec,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def _assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def _checkpointer(directory, **checkpoint_overrides):
    config = step_config()
    for name, value in checkpoint_overrides.items():
        config.checkpoint[name] = value
    return Checkpointer(directory, config, tiny_spec())


def test_spec_json_round_trip():
    spec = tiny_spec()
    back = spec_from_json(spec_to_json(spec))
    for name in spec._fields:
        np.testing.assert_array_equal(getattr(back, name), getattr(spec, name))


def test_resume_is_bit_exact_and_eval_restore_needs_only_the_directory(tmp_path):
    learner = tiny_learner(1)
    traj = random_trajectory(jax.random.key(1), tiny_spec(), UNROLL, BATCH)
    state, _ = learner.update(learner.init(jax.random.key(0)), traj)
    saved = _host(state)
    checkpointer = _checkpointer(tmp_path / "ckpt")
    assert checkpointer.save(state, {"validation/cost_vs_teacher": 0.98})
    checkpointer.close()

    reopened = _checkpointer(tmp_path / "ckpt")
    restored = reopened.restore(learner.init(jax.random.key(99)))
    reopened.close()
    _assert_trees_equal(_host(restored), saved)
    assert int(restored.update_step) == 1
    # Training on from the restored state matches training on from the original.
    next_a, _ = learner.update(restored, traj)
    next_b, _ = learner.update(learner.replicate(saved), traj)
    _assert_trees_equal(_host(next_a), _host(next_b))

    config, params, norm_state, spec = restore_for_eval(tmp_path / "ckpt")
    assert config.learner.hidden_size == step_config().hidden_size
    _assert_trees_equal(_host(params), saved.params)
    _assert_trees_equal(_host(norm_state), saved.norm_state)
    policy = make_policy(config.learner, spec)
    obs = random_observation(jax.random.key(3), spec, batch=2)
    np.testing.assert_allclose(
        policy.mode(params, norm_state, obs), policy.mode(saved.params, saved.norm_state, obs)
    )


def test_keeps_last_k_plus_best_and_saves_on_cadence(tmp_path):
    checkpointer = _checkpointer(tmp_path / "ckpt", max_to_keep=2, save_every_updates=2)
    assert not checkpointer.maybe_save(synthetic_state(1))
    # cost against the teacher: lower is better
    scores = {2: 1.02, 4: 0.95, 6: 1.01, 8: 0.99, 10: None, 12: None}
    for step, score in scores.items():
        metrics = None if score is None else {"validation/cost_vs_teacher": score}
        assert checkpointer.maybe_save(synthetic_state(step), metrics)
    checkpointer.close()
    reopened = _checkpointer(tmp_path / "ckpt", max_to_keep=2)
    # latest two (10, 12) plus the best by validation (4, 0.95 of the teacher's cost)
    assert reopened.all_steps() == [4, 10, 12]
    assert reopened.best_step() == 4
    best = reopened.restore(synthetic_state(0), step=4)
    reopened.close()
    _assert_trees_equal(_host(best), _host(synthetic_state(4)))


def test_best_of_a_run_that_never_validated_is_a_clear_error(tmp_path):
    checkpointer = _checkpointer(tmp_path / "ckpt")
    assert checkpointer.save(synthetic_state(3))
    checkpointer.close()
    with pytest.raises(FileNotFoundError, match="carries validation metrics"):
        restore_for_eval(tmp_path / "ckpt", best=True)


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        restore_for_eval(tmp_path / "nothing")


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    sys.path.insert(0, {root!r})
    from orbax.checkpoint._src.path import atomicity
    from tests.learner.test_checkpoint import _checkpointer
    from tests.learner.fixtures import synthetic_state

    checkpointer = _checkpointer({directory!r})
    checkpointer.save(synthetic_state(1))
    checkpointer.manager.wait_until_finished()

    async def hang(self, *args, **kwargs):  # the data is written; the commit never comes
        print("WRITTEN", flush=True)
        await asyncio.sleep(1000)

    atomicity.AtomicRenameTemporaryPath.finalize = hang
    atomicity.CommitFileTemporaryPath.finalize = hang
    checkpointer.save(synthetic_state(2))
    time.sleep(1000)
    """
)


def test_kill_during_save_leaves_the_previous_checkpoint(tmp_path):
    directory = str(tmp_path / "ckpt")
    script = CHILD.format(root=REPO_ROOT, directory=directory)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        line = child.stdout.readline()  # blocks until the second save has written its data
        assert line.strip() == "WRITTEN", f"child did not reach the commit: {line!r}"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    leftovers = sorted(os.listdir(directory))
    assert "1" in leftovers and "2" not in leftovers
    assert any(name.startswith("2.") and "tmp" in name for name in leftovers), leftovers

    checkpointer = _checkpointer(directory)
    assert checkpointer.all_steps() == [1]
    restored = checkpointer.restore(synthetic_state(0))
    _assert_trees_equal(_host(restored), _host(synthetic_state(1)))
    # Training resumes and saves step 2 again; the half-written save is cleaned away.
    assert checkpointer.save(synthetic_state(2))
    checkpointer.close()
    assert sorted(os.listdir(directory)) == ["1", "2"]


def test_a_save_without_metrics_logs_no_warning(tmp_path, caplog):
    learner = tiny_learner(1)
    checkpointer = _checkpointer(tmp_path / "ckpt")
    with caplog.at_level("WARNING"):
        assert checkpointer.save(learner.init(jax.random.key(0)))
        checkpointer.close()
    assert not [r for r in caplog.records if "metrics" in r.getMessage()]
    assert checkpointer.latest_step() == 0


def test_a_checkpoint_stored_before_a_learner_field_existed_restores_with_its_default(tmp_path):
    """A run saved by an older release lacks the learner fields added since: evaluation
    restores it with those fields at their defaults (which keep the old behaviour), as it does
    for the env's, instead of failing on the missing field."""
    config = step_config()
    del config["type_gamma"]
    del config.checkpoint["validation_episodes"]
    checkpointer = Checkpointer(tmp_path / "ckpt", config, tiny_spec())
    assert checkpointer.save(tiny_learner(1).init(jax.random.key(0)), {})
    checkpointer.close()
    restored, *_ = restore_for_eval(tmp_path / "ckpt")
    assert restored.learner.type_gamma == ""
    assert restored.learner.checkpoint.validation_episodes == 0
    assert restored.learner.hidden_size == config.hidden_size
