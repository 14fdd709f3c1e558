"""GridEnv on ieee14: jit + vmap episodes, spec checks, conservation, islands, cascades, resets.

One vmapped step and one vmapped reset are compiled for the whole module (short horizon so
auto-reset happens inside the episodes); every test reuses them with edited states/params.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import INFO_KEYS, make_env
from envs.sim.observation import gather_per_grid
from envs.types import Observation

BATCH = 4
HORIZON = 8


@pytest.fixture(scope="module")
def setup():
    config = default_env_config()
    config.case = "ieee14"
    config.horizon = HORIZON
    config.scenario = "normal"
    env, params = make_env(config)
    reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    return env, params, env.spec(params), reset, step


def _keys(seed, n=BATCH):
    return jax.random.split(jax.random.PRNGKey(seed), n)


def _random_actions(key, spec):
    return jax.random.uniform(
        key, (BATCH, spec.num_agents, spec.action_dim), minval=-1.0, maxval=1.0
    )


def _calm_actions(spec):
    """No shedding, full renewables, idle batteries, units at mid-range setpoints."""
    return jnp.zeros((BATCH, spec.num_agents, spec.action_dim))


def _batch_of(state, index=0):
    return jax.tree_util.tree_map(lambda x: x[index], state)


def test_spec_matches_observations_and_actions(setup):
    _, params, spec, reset, _ = setup
    obs, _ = reset(_keys(0), params)
    assert isinstance(obs, Observation)
    assert obs.agent_obs.shape == (BATCH, spec.num_agents, spec.obs_dim)
    assert obs.global_state.shape == (BATCH, spec.global_dim)
    assert spec.action_mask.shape == (spec.num_agents, spec.action_dim)
    assert spec.agent_type.shape == (spec.num_agents,)
    assert spec.agent_mask.all() and spec.action_mask.any(axis=1).all()
    assert len(spec.agent_type_gamma) == spec.num_agent_types == len(spec.agent_type_names)
    assert np.isfinite(np.asarray(obs.agent_obs)).all()


def test_random_episodes_are_finite_bounded_and_reset(setup):
    _, params, spec, reset, step = setup
    obs, state = reset(_keys(1), params)
    key = jax.random.PRNGKey(2)
    dones = 0
    for _ in range(2 * HORIZON + 2):
        key, key_a, key_s = jax.random.split(key, 3)
        obs, state, reward, term, trunc, info = step(
            jax.random.split(key_s, BATCH), state, _random_actions(key_a, spec), params
        )
        assert reward.shape == (BATCH, spec.num_agents)
        assert np.isfinite(np.asarray(reward)).all()
        assert (np.asarray(reward) >= -10.0).all() and (np.asarray(reward) <= 1.0).all()
        assert set(INFO_KEYS) | {"final_obs"} == set(info)
        for name in INFO_KEYS:
            assert info[name].shape == (BATCH,) and np.isfinite(np.asarray(info[name])).all()
        assert np.isfinite(np.asarray(obs.agent_obs)).all()
        dones += int(np.sum(np.asarray(term | trunc)))
        assert (np.asarray(state.t) <= HORIZON).all()
    assert dones >= BATCH  # every grid finished at least one episode


def _kcl_mismatch(state, params):
    """Per-bus (flow out - injection) for one grid, MW; the slack bus is included."""
    grid = params.grid
    served = jnp.where(state.energised, state.demand - state.shed, 0.0)
    p_bus = grid.gen_to_bus @ state.pg - served
    p_bus = p_bus.at[params.devices.storage_bus].add(state.storage_p)
    p_bus = p_bus - jnp.where(state.energised, grid.bus_gs, 0.0)
    flow_out = grid.branch_bus.T @ state.flow
    return np.asarray(flow_out - p_bus)


def test_power_balance_and_kcl_every_step(setup):
    _, params, spec, reset, step = setup
    _, state = reset(_keys(3), params)
    key = jax.random.PRNGKey(4)
    slack = params.grid.slack
    for _ in range(HORIZON - 1):
        key, key_a, key_s = jax.random.split(key, 3)
        _, state, _, _, _, info = step(
            jax.random.split(key_s, BATCH), state, _random_actions(key_a, spec), params
        )
        supply = info["gen_mw"] + info["storage_mw"] + info["slack_mw"]
        demand = info["served_mw"] + info["shunt_mw"]
        np.testing.assert_allclose(supply, demand, atol=0.05, rtol=1e-4)
        for b in range(BATCH):
            grid_state = _batch_of(state, b)
            mismatch = _kcl_mismatch(grid_state, params)
            energised = np.asarray(grid_state.energised)
            others = energised & (np.arange(params.grid.n_bus) != slack)
            np.testing.assert_allclose(mismatch[others], 0.0, atol=0.05)
            # the slack bus sends out exactly what it generates plus the slack pickup
            np.testing.assert_allclose(mismatch[slack], float(info["slack_mw"][b]), atol=0.05)


def test_same_key_same_trajectory_different_key_differs(setup):
    _, params, spec, reset, step = setup

    def run(seed):
        obs, state = reset(_keys(seed), params)
        out = []
        key = jax.random.PRNGKey(seed + 100)
        for _ in range(3):
            key, key_a, key_s = jax.random.split(key, 3)
            obs, state, *_ = step(
                jax.random.split(key_s, BATCH), state, _random_actions(key_a, spec), params
            )
            out.append(np.asarray(obs.global_state))
        return np.stack(out)

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.allclose(run(5), run(6))


def test_truncation_at_horizon_returns_final_obs(setup):
    _, params, spec, reset, step = setup
    obs, state = reset(_keys(7), params)
    actions = _calm_actions(spec)
    for i in range(HORIZON):
        obs, state, _, term, trunc, info = step(_keys(100 + i), state, actions, params)
        if i < HORIZON - 1:
            assert not np.asarray(trunc).any()
            np.testing.assert_array_equal(info["final_obs"].global_state, obs.global_state)
    assert np.asarray(trunc | term).all()
    final_t = np.asarray(info["final_obs"].global_state[:, -1])  # last feature: t / horizon
    np.testing.assert_allclose(final_t[np.asarray(trunc)], 1.0)
    np.testing.assert_array_equal(np.asarray(state.t), 0)
    np.testing.assert_allclose(np.asarray(obs.global_state[:, -1]), 0.0)


def test_lost_generation_beyond_reserves_collapses_frequency_and_terminates(setup):
    _, params, spec, reset, step = setup
    _, state = reset(_keys(8), params)
    # every conventional unit trips and demand doubles: renewables (200 MW) cannot carry it
    conventional = np.flatnonzero(~np.asarray(params.devices.is_renewable))
    state = _force_outages(state, [int(g) for g in conventional], start=1, kind=2)
    # float32, not a weak-typed 2.0: the same input types as every other step here, so the step
    # compiled for them is reused
    doubled = jnp.full((BATCH,), 2.0, jnp.float32)
    state = state.replace(episode=state.episode.replace(load_scale=doubled))
    _, new_state, reward, term, _, info = step(_keys(9), state, _calm_actions(spec), params)
    freq = np.asarray(info["freq_dev_hz"])
    dark = np.asarray(info["served_fraction"]) < params.consts.blackout_served_fraction
    assert (freq <= 0.0).all()
    assert ((freq < -params.consts.freq_collapse_hz) | dark).all()
    assert (freq < -params.consts.freq_collapse_hz).any()
    assert np.asarray(term).all()
    np.testing.assert_allclose(np.asarray(reward), params.consts.blackout_penalty)
    np.testing.assert_array_equal(np.asarray(new_state.t), 0)  # auto-reset


def _force_outages(state, elements, start, kind=1):
    """Schedule outages (kind 1 branch, 2 generator) from step ``start`` in every grid."""
    n = len(elements)
    slots = state.episode.event_time.shape[-1]
    pad = slots - n
    fill = lambda values, empty: jnp.tile(  # noqa: E731
        jnp.asarray(list(values) + [empty] * pad, jnp.int32), (BATCH, 1)
    )
    episode = state.episode.replace(
        event_time=fill([start] * n, -1),
        event_kind=fill([kind] * n, 0),
        event_index=fill(elements, 0),
        event_duration=fill([100] * n, 0),
        line_failure_rate=jnp.zeros((BATCH,)),
    )
    return state.replace(episode=episode)


def _branches_of_bus(params, bus):
    grid = params.grid
    f, t = np.asarray(grid.branch_from), np.asarray(grid.branch_to)
    return [int(i) for i in np.flatnonzero((f == bus) | (t == bus))]


def test_islanded_load_is_unserved_without_nan(setup):
    _, params, spec, reset, step = setup
    _, state = reset(_keys(10), params)
    bus = 13  # ieee14 bus 14: a load bus with two branches
    state = _force_outages(state, _branches_of_bus(params, bus), start=1)
    obs, state, reward, _, _, info = step(_keys(11), state, _calm_actions(spec), params)
    assert not np.asarray(state.energised[:, bus]).any()
    lost = np.asarray(state.demand[:, bus]) * params.consts.step_hours
    np.testing.assert_allclose(np.asarray(info["unserved_energy_mwh"]), lost, rtol=1e-4)
    assert (np.asarray(info["served_fraction"]) < 1.0).all()
    for leaf in jax.tree_util.tree_leaves((obs, state, reward, info)):
        assert np.isfinite(np.asarray(leaf, np.float64)).all()


def test_a_stranded_slack_unit_darkens_only_its_own_bus(setup):
    """Both branches of the slack bus (ieee14 bus 1: the 332 MW unit, no load) go out. Under
    ``env.island_rule="largest_load"`` (the default) the other 13 buses stay energised and
    balanced, only the slack bus is lost, and no mismatch is left on any bus (the kept island
    has no slack). Under the slack rule before it they went dark with their units online (the
    rule is tested against the host's in tests/envs/powerflow)."""
    _, params, spec, reset, step = setup
    slack = params.grid.slack
    assert params.consts.island_rule == "largest_load"
    _, state = reset(_keys(14), params)
    state = _force_outages(state, _branches_of_bus(params, slack), start=1)
    _, after, _, term, _, info = step(_keys(15), state, _calm_actions(spec), params)
    assert not np.asarray(term).any()
    assert (np.asarray(info["served_fraction"]) > 0.5).all()
    energised = np.asarray(after.energised)
    assert not energised[:, slack].any() and energised.sum(axis=1).tolist() == [13] * BATCH
    supply = info["gen_mw"] + info["storage_mw"]
    np.testing.assert_allclose(supply, info["served_mw"] + info["shunt_mw"], atol=0.05)
    np.testing.assert_allclose(np.asarray(info["slack_mw"]), 0.0, atol=0.05)
    for b in range(BATCH):
        mismatch = _kcl_mismatch(_batch_of(after, b), params)
        np.testing.assert_allclose(mismatch, 0.0, atol=0.05)
    for leaf in jax.tree_util.tree_leaves((after, info)):
        assert np.isfinite(np.asarray(leaf, np.float64)).all()


def test_overloaded_branch_trips_and_starts_its_cooldown(setup):
    _, params, spec, reset, step = setup
    _, state = reset(_keys(12), params)
    target = int(np.argmax(np.abs(np.asarray(state.flow[0]))))
    rating = params.grid.branch_rating.at[target].set(1.0)  # any flow is > 150%
    weak = params.replace(grid=params.grid.replace(branch_rating=rating))
    _, state, _, _, _, info = step(_keys(13), state, _calm_actions(spec), weak)
    assert np.asarray(info["trips"] >= 1).all()
    assert not np.asarray(state.branch_in_service[:, target]).any()
    assert (np.asarray(state.branch_cooldown[:, target]) == params.consts.reconnect_steps).all()
    assert np.asarray(state.flow[:, target] == 0.0).all()


def test_only_the_finished_grid_of_a_batch_is_reset(setup):
    env, params, spec, reset, step = setup
    _, state = reset(_keys(11), params)
    state = state.replace(t=state.t.at[1].set(HORIZON - 1))  # grid 1 truncates this step
    keys = _keys(12)
    obs, state_out, _, term, trunc, info = step(keys, state, _calm_actions(spec), params)
    done = np.asarray(term | trunc)
    assert done.tolist() == [False, True, False, False]
    np.testing.assert_array_equal(np.asarray(state_out.t), [1, 0, 1, 1])
    kept = np.flatnonzero(~done)
    np.testing.assert_array_equal(
        np.asarray(obs.global_state)[kept], np.asarray(info["final_obs"].global_state)[kept]
    )
    # the finished grid holds exactly what env.reset gives for its reset key
    reset_obs, reset_state = jax.jit(env.reset)(jax.random.split(keys[1])[1], params)
    for ours, theirs in zip(
        jax.tree_util.tree_leaves((_batch_of(obs, 1), _batch_of(state_out, 1))),
        jax.tree_util.tree_leaves((reset_obs, reset_state)),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-5)


def _gather_operands(jaxpr):
    """Shapes of every gather's operand in a closed jaxpr, sub-jaxprs included."""
    shapes = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "gather":
            shapes.append(eqn.invars[0].aval.shape)
        for sub in jax.core.jaxprs_in_params(eqn.params):
            shapes.extend(_gather_operands(sub))
    return shapes


def test_batched_observation_is_one_flat_gather_and_equals_each_grids_own(setup):
    env, params, spec, reset, _ = setup
    obs, states = reset(_keys(5), params)
    batched = jax.vmap(env.observe, in_axes=(0, None))
    # One gather of scalars from the flattened batch of per-grid tables (features, a zero,
    # the agents' constants; see envs.sim.observation.gather_per_grid), not whole feature
    # columns that XLA:CPU then transposes, nor a second pass for the constants.
    agents, consts = params.layout.agent_const.shape
    table_width = spec.global_dim + 1 + agents * consts
    operands = _gather_operands(jax.make_jaxpr(batched)(states, params).jaxpr)
    assert operands == [(BATCH * table_width,)]
    both = batched(states, params)
    together = np.asarray(both.agent_obs)
    one = env.observe(_batch_of(states, 3), params)  # float rounding of the features may differ
    np.testing.assert_allclose(together[3], one.agent_obs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(together, obs.agent_obs, rtol=1e-5, atol=1e-6)
    # and each agent's row is its indexed features (index F: zero) followed by its constants
    features = np.asarray(both.global_state)
    padded = np.concatenate([features, np.zeros((BATCH, 1), features.dtype)], axis=1)
    index = np.asarray(params.layout.obs_index)
    expected = np.concatenate(
        [
            padded[:, index],
            np.broadcast_to(np.asarray(params.layout.agent_const), (BATCH, agents, consts)),
        ],
        axis=-1,
    )
    np.testing.assert_array_equal(together, expected)


def test_gather_per_grid_batches_like_indexing_whatever_is_batched():
    table = jnp.arange(15.0).reshape(3, 5)
    index = jnp.array([[4, 0], [1, 1]])
    rows = np.asarray(table)
    shared = jax.vmap(gather_per_grid, in_axes=(0, None))(table, index)
    np.testing.assert_array_equal(shared, rows[:, np.asarray(index)])
    per_grid = jnp.stack([index, 4 - index, jnp.zeros_like(index)])
    both = jax.vmap(gather_per_grid)(table, per_grid)
    np.testing.assert_array_equal(both, [rows[b][np.asarray(per_grid[b])] for b in range(3)])
    one_table = jax.vmap(gather_per_grid, in_axes=(None, 0))(table[1], per_grid)
    np.testing.assert_array_equal(one_table, rows[1][np.asarray(per_grid)])


def test_the_day_end_credits_the_energy_stored_beyond_the_start_at_the_evaluations_price():
    """``env.episode_end="stored_energy"``: the operator reward of the step the time limit cuts
    gains the evaluation's price of stored energy times the energy stored beyond the start (in
    reference steps); every other step's reward is the operator's own; the learner is told
    not to bootstrap there."""
    from envs.opf.storage_value import stored_energy_value
    from envs.sim import reward
    from envs.sim.transition import transition

    config = default_env_config()
    config.case, config.horizon, config.scenario = "ieee14", HORIZON, "normal"
    config.reward, config.episode_end = "operator", "stored_energy"
    env, params = make_env(config)
    consts = params.consts
    assert consts.end_energy_value > 0.0
    assert consts.end_energy_value == pytest.approx(stored_energy_value(params))
    assert not env.bootstraps_time_limit(params)
    spec = env.spec(params)
    _, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(_keys(31), params)
    start = np.asarray(state.soc).sum(-1)
    step = jax.jit(jax.vmap(transition, in_axes=(0, 0, 0, None)))
    for i in range(HORIZON):
        actions = _random_actions(jax.random.PRNGKey(40 + i), spec)
        state, rewards, blackout, info = step(_keys(50 + i), state, actions, params)
        step_cost = info["cost"] + consts.voll * info["island_unserved_mwh"]
        own = jax.vmap(reward.operator_rewards, in_axes=(0, None, 0, None, 0, None, None))(
            step_cost,
            consts.reference_cost,
            info["reward_safety"],
            spec.num_agents,
            blackout,
            consts.blackout_penalty,
            HORIZON - (i + 1),
        )
        credit = np.asarray(rewards - own)
        assert not np.asarray(blackout).any()
        if i < HORIZON - 1:
            np.testing.assert_allclose(credit, 0.0, atol=1e-5)
    gained = np.asarray(state.soc).sum(-1) - start
    assert np.abs(gained).max() > 1.0  # the random actions moved the batteries
    expected = consts.end_energy_value * gained / consts.reference_cost
    np.testing.assert_allclose(
        credit, np.broadcast_to(expected[:, None], credit.shape), rtol=1e-4, atol=1e-5
    )


def test_the_days_progress_is_observed_only_where_the_config_asks(setup):
    """``env.observe_progress=False`` (set in the config, as the default preset sets it) leaves
    a zero where t / horizon was, in the global state and in every agent observation that reads
    it, and changes no other feature."""
    from envs.sim.observation import observe

    _, params, _, reset, _ = setup
    config = default_env_config()
    config.case, config.horizon, config.scenario = "ieee14", HORIZON, "normal"
    config.observe_progress = False
    _, hidden = make_env(config)
    assert params.consts.observe_progress and not hidden.consts.observe_progress
    _, state = reset(_keys(61), params)
    state = state.replace(t=jnp.full_like(state.t, 5))
    seen = jax.vmap(observe, in_axes=(0, None))(state, params)
    unseen = jax.vmap(observe, in_axes=(0, None))(state, hidden)
    progress = seen.global_state.shape[-1] - 1  # the global block ends the features
    np.testing.assert_allclose(seen.global_state[:, progress], 5 / HORIZON)
    np.testing.assert_array_equal(unseen.global_state[:, progress], 0.0)
    np.testing.assert_array_equal(
        np.delete(np.asarray(unseen.global_state), progress, axis=-1),
        np.delete(np.asarray(seen.global_state), progress, axis=-1),
    )
    reads_it = np.asarray(params.layout.obs_index) == progress  # [A, Of]
    assert reads_it.any()
    gathered = reads_it.shape[-1]  # the agents' constant features follow
    seen_obs = np.asarray(seen.agent_obs)[..., :gathered]
    unseen_obs = np.asarray(unseen.agent_obs)[..., :gathered]
    np.testing.assert_allclose(seen_obs[:, reads_it], 5 / HORIZON)
    np.testing.assert_array_equal(unseen_obs[:, reads_it], 0.0)
    np.testing.assert_array_equal(unseen_obs[:, ~reads_it], seen_obs[:, ~reads_it])
    np.testing.assert_array_equal(
        np.asarray(unseen.agent_obs)[..., gathered:], np.asarray(seen.agent_obs)[..., gathered:]
    )
