"""Learner step: 2 devices == 1 device, NaN batches change nothing, geometry errors."""

import itertools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.types import Observation
from learner import sgd
from learner.config import validate_learner_config
from learner.learner import Learner, batch_geometry, per_agent_discounts
from learner.types import Trajectory
from tests.learner.fixtures import BATCH as B
from tests.learner.fixtures import UNROLL as T
from tests.learner.fixtures import random_trajectory, small_config, tiny_spec
from tests.learner.fixtures import step_config as _config
from tests.learner.fixtures import tiny_learner as _learner


def _host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def _assert_trees_close(a, b, atol):
    flat_a, flat_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(flat_a) == len(flat_b)
    for x, y in zip(flat_a, flat_b, strict=True):
        np.testing.assert_allclose(x, y, atol=atol, rtol=1e-4)


def test_two_devices_equal_one_device_on_the_whole_batch():
    traj = random_trajectory(jax.random.key(1), tiny_spec(), T, B)
    results = []
    for num_devices in (2, 1):
        learner = _learner(num_devices)
        state = learner.init(jax.random.key(0))
        initial = _host(state.params)
        state, metrics = learner.update(state, traj)
        results.append((_host(state), _host(metrics)))
    (state_2, metrics_2), (state_1, metrics_1) = results
    # The update moved the parameters (so equality below is not trivial).
    moved = jax.tree.map(lambda a, b: np.max(np.abs(a - b)), state_1.params, initial)
    assert max(jax.tree.leaves(moved)) > 1e-4
    _assert_trees_close(state_2.params, state_1.params, atol=1e-5)
    _assert_trees_close(state_2.opt_state, state_1.opt_state, atol=1e-5)
    _assert_trees_close(state_2.norm_state, state_1.norm_state, atol=1e-5)
    assert metrics_2.keys() == metrics_1.keys()
    for name in metrics_1:
        np.testing.assert_allclose(metrics_2[name], metrics_1[name], rtol=1e-4, atol=1e-5)
    for name in ("strategic/policy_loss", "operational/explained_variance", "grad_norm"):
        assert name in metrics_1
    assert int(state_1.update_step) == 1 and int(state_1.skipped_updates) == 0


def test_update_from_parts_equals_update_on_the_concatenated_batch():
    traj = random_trajectory(jax.random.key(1), tiny_spec(), T, B)
    learner = _learner(2)

    def split(sizes):
        edges = np.cumsum([0, *sizes])
        return [
            Trajectory(
                *[
                    x[lo:hi] if name == "last_value" else x[:, lo:hi]
                    for name, x in zip(Trajectory._fields, traj, strict=True)
                ]
            )
            for lo, hi in itertools.pairwise(edges)
        ]

    expected = _host(learner.update(learner.init(jax.random.key(0)), traj))
    # Two parts per device (placed per device), and uneven parts (concatenated on the host).
    for sizes in ([B // 4] * 4, [1, B - 1]):
        got = _host(learner.update_parts(learner.init(jax.random.key(0)), split(sizes)))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="grids per learner device"):
        learner.update_parts(learner.init(jax.random.key(0)), split([1, 1, B - 2])[:2])


def test_nan_in_batch_never_reaches_the_parameters():
    learner = _learner(1)
    state = learner.init(jax.random.key(0))
    before = _host(state)
    traj = random_trajectory(jax.random.key(1), tiny_spec(), T, B)
    bad = traj._replace(reward=traj.reward.at[3, 1, 0].set(jnp.nan))
    state, metrics = learner.update(state, bad)
    after = _host(state)
    _assert_trees_close(after.params, before.params, atol=0.0)
    _assert_trees_close(after.norm_state, before.norm_state, atol=0.0)
    num_sgd = learner.geometry.num_minibatches * learner.config.num_epochs
    assert int(metrics["skipped_updates"]) == num_sgd
    assert int(after.skipped_updates) == num_sgd
    assert int(after.update_step) == 1
    # A good batch afterwards trains normally.
    state, metrics = learner.update(state, traj)
    assert int(metrics["skipped_updates"]) == 0
    assert int(state.skipped_updates) == num_sgd
    moved = jax.tree.map(lambda a, b: np.max(np.abs(a - b)), _host(state.params), before.params)
    assert max(jax.tree.leaves(moved)) > 1e-4


def test_batch_that_does_not_divide_is_rejected_at_construction():
    with pytest.raises(ValueError, match="divisible by the number of learner devices"):
        Learner(_config(batch_size=5, shuffle_groups=0), tiny_spec(), jax.devices()[:2])
    with pytest.raises(ValueError, match="minibatch"):
        batch_geometry(_config(minibatch_size=7), num_devices=1)
    with pytest.raises(ValueError, match="do not split into minibatches"):
        batch_geometry(_config(minibatch_size=12, shuffle_groups=1), num_devices=1)


def test_geometry_default_shuffle_uses_finest_shared_cells():
    geometry = batch_geometry(small_config(unroll_length=32, batch_size=64), num_devices=2)
    # cells of B / G = 2 samples (one grid per device), 128 / 2 = 64 cells per minibatch
    assert (geometry.shuffle_groups, geometry.cells_per_minibatch) == (32, 64)
    assert geometry.num_minibatches == 32 * 64 // 128


def test_wrong_trajectory_shape_is_rejected():
    learner = _learner(1)
    traj = random_trajectory(jax.random.key(1), tiny_spec(), T + 1, B)
    with pytest.raises(ValueError, match=r"trajectory.obs has shape"):
        learner.update(learner.init(jax.random.key(0)), traj)


def test_teacher_pull_draws_the_deterministic_action_toward_zero():
    # Same batch, same start: with the pull on, the update leaves the policy's mode nearer the
    # teacher's zero action than the plain PPO update does (the module's compiled learner).
    spec = tiny_spec()
    traj = random_trajectory(jax.random.key(1), spec, T, B)
    obs = Observation(traj.obs[0], traj.global_state[0])
    pulls = []
    for learner in (_learner(1), Learner(_config(teacher_pull=50.0), spec, jax.devices()[:1])):
        state, metrics = learner.update(learner.init(jax.random.key(0)), traj)
        mode = learner.policy.mode(state.params, state.norm_state, obs)
        pulls.append(float(jnp.mean(jnp.sum(jnp.square(mode), axis=-1))))
        assert np.isfinite(float(metrics["strategic/teacher_pull"]))
    assert pulls[1] < 0.5 * pulls[0]


def test_teacher_pull_toward_the_start_holds_each_action_at_its_start():
    # Both policies start the operational agent at 0.5, and one update on the same batch pulls
    # its mode lower toward zero than toward the start. The strategic agent (start 0) is
    # pulled toward zero either way, and the padded slots stay 0.
    spec = tiny_spec()
    traj = random_trajectory(jax.random.key(1), spec, T, B)
    obs = Observation(traj.obs[0], traj.global_state[0])
    operational = []
    for toward in ("zero", "start"):
        config = _config(
            teacher_pull=50.0, type_init_action="operational=0.5", teacher_pull_toward=toward
        )
        learner = Learner(config, spec, jax.devices()[:1])
        state, _ = learner.update(learner.init(jax.random.key(0)), traj)
        mode = np.asarray(learner.policy.mode(state.params, state.norm_state, obs))
        operational.append(float(np.mean(mode[:, 1, 0])))
        assert np.all(mode[:, 2] == 0.0) and np.all(mode[:, 1, 1] == 0.0)
        assert float(np.max(np.abs(mode[:, 0]))) < 0.2
    # One update moves a mode by a few hundredths (the step size bounds it; the random batch's
    # advantages move both alike): 0.473 toward zero, 0.485 toward the start.
    assert operational[1] - operational[0] > 0.005
    assert abs(operational[1] - 0.5) < abs(operational[0] - 0.5)


def test_the_entropy_bonus_and_the_step_size_the_updates_used_follow_their_decays():
    # Both decay over 2 updates: the loss weighs the entropy by base, base / 2, then 0, and
    # the step is scaled by 1, 1/2, then 0, so the third update leaves the parameters as
    # they were (while the statistics it keeps still move).
    spec = tiny_spec()
    config = _config(entropy_decay_updates=2, learning_rate_decay_updates=2)
    base = float(config.entropy_coef)
    learner = Learner(config, spec, jax.devices()[:1])
    state = learner.init(jax.random.key(0))
    used, scales, params = [], [], []
    for n in range(3):
        before = jax.device_get(state.params)  # the update donates the state
        state, metrics = learner.update(state, random_trajectory(jax.random.key(n), spec, T, B))
        used.append(float(metrics["entropy_coef"]))
        scales.append(float(metrics["learning_rate_scale"]))
        moved = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), _host(state.params), before)
        params.append(max(jax.tree.leaves(moved)))
    np.testing.assert_allclose(used, [base, base / 2, 0.0], rtol=1e-6)
    np.testing.assert_allclose(scales, [1.0, 0.5, 0.0], rtol=1e-6)
    assert params[0] > 0 and params[1] > 0
    assert params[2] == 0.0


def test_type_gamma_and_type_lambda_override_the_named_types_only():
    spec = tiny_spec()
    gamma, lambda_ = per_agent_discounts(small_config(), spec)
    np.testing.assert_allclose(gamma, [0.99, 0.9, 0.9])
    np.testing.assert_allclose(lambda_, [0.95, 0.9, 0.9])
    config = small_config(type_gamma="operational=0.5", type_lambda=" strategic = 0.25 ")
    gamma, lambda_ = per_agent_discounts(config, spec)
    np.testing.assert_allclose(gamma, [0.99, 0.5, 0.5])
    np.testing.assert_allclose(lambda_, [0.25, 0.9, 0.9])
    # On top of the global values too.
    config = small_config(use_spec_discounts=False, type_gamma="strategic=0,operational=1")
    gamma, _ = per_agent_discounts(config, spec)
    np.testing.assert_allclose(gamma, [0.0, 1.0, 1.0])


def test_a_type_discount_for_a_type_the_layout_lacks_is_refused():
    config = small_config(type_gamma="safety=0.9")
    with pytest.raises(ValueError, match=r"names agent type 'safety'.*strategic, operational"):
        per_agent_discounts(config, tiny_spec())


@pytest.mark.parametrize("text", ["safety", "safety=1.5", "safety=x", "=0.5", "safety=-0.1"])
def test_a_malformed_type_discount_is_refused(text):
    config = small_config(type_lambda=text)
    with pytest.raises(
        ValueError, match=r"learner\.type_lambda=.* is invalid: allowed 'type=value"
    ):
        validate_learner_config(config)


def _normalise(advantage, group, num_groups, type_onehot):
    statics = types.SimpleNamespace(
        type_onehot=type_onehot, num_advantage_groups=num_groups, axis_name="d"
    )
    one_device = jax.vmap(lambda a, g: sgd._normalised_advantage(statics, a, g), axis_name="d")
    return np.asarray(one_device(advantage[None], group[None])[0])


def test_advantages_per_scenario_weigh_each_scenario_alike():
    # Two scenarios whose advantages differ 100-fold in scale (a quiet day beside a cascading
    # one) and in mean; agents 0-1 of one type, agent 2 of another, agent 3 padded.
    rng = np.random.default_rng(0)
    group = np.repeat(np.array([0, 3], np.int32), 200)
    scale = np.where(group == 0, 0.01, 1.0)[:, None]
    advantage = (rng.normal(size=(400, 4)) * scale + 5.0 * scale).astype(np.float32)
    advantage[:, 3] = 0.0
    type_onehot = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], np.float32)
    grouped = _normalise(jnp.asarray(advantage), jnp.asarray(group), 6, type_onehot)
    for g in (0, 3):
        for agents in ([0, 1], [2]):
            cell = grouped[group == g][:, agents]
            assert abs(cell.mean()) < 1e-4 and cell.std() == pytest.approx(1.0, rel=1e-3)
    assert np.all(grouped[:, 3] == 0.0)
    # Pooled (one group), the quiet scenario's advantages are ~1 % of the other's: the same
    # samples, normalised with the scenario ids ignored.
    pooled = _normalise(jnp.asarray(advantage), jnp.zeros_like(jnp.asarray(group)), 1, type_onehot)
    quiet = pooled[group == 0][:, :3] - pooled[group == 0][:, :3].mean(axis=0)
    busy = pooled[group == 3][:, :3] - pooled[group == 3][:, :3].mean(axis=0)
    assert quiet.std() < 0.02 * busy.std()


def test_the_learner_groups_advantages_by_the_trajectory_s_scenario():
    # One scenario in the batch: grouping per scenario is the pooled update. Two scenarios of
    # different reward scales: the update differs.
    spec = tiny_spec()
    traj = random_trajectory(jax.random.key(1), spec, T, B)
    grouped = Learner(_config(advantage_groups="scenario"), spec, jax.devices()[:1])
    pooled = _learner(1)
    state_p, _ = pooled.update(pooled.init(jax.random.key(0)), traj)
    state_g, _ = grouped.update(grouped.init(jax.random.key(0)), traj)
    _assert_trees_close(_host(state_g.params), _host(state_p.params), atol=1e-5)
    split = np.arange(B) < B // 2
    mixed = traj._replace(
        scenario=jnp.where(split[None, :], 0, 5).astype(jnp.int32) * jnp.ones((T, 1), jnp.int32),
        reward=traj.reward * jnp.where(split, 100.0, 1.0)[None, :, None],
    )
    state_p, _ = pooled.update(pooled.init(jax.random.key(0)), mixed)
    state_g, _ = grouped.update(grouped.init(jax.random.key(0)), mixed)
    moved = jax.tree.map(
        lambda a, b: float(np.max(np.abs(a - b))), _host(state_g.params), _host(state_p.params)
    )
    assert max(jax.tree.leaves(moved)) > 1e-4


def test_advantages_grouped_per_scenario_need_normalised_advantages():
    config = _config(advantage_groups="scenario", normalise_advantages=False)
    with pytest.raises(ValueError, match=r"learner\.advantage_groups='scenario' needs"):
        validate_learner_config(config)
    with pytest.raises(ValueError, match=r"learner\.advantage_groups='episode' is invalid"):
        validate_learner_config(_config(advantage_groups="episode"))
