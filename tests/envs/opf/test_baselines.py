"""Baselines, the evaluation rollout and the oracle on the environment's own episodes."""

import dataclasses
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.config import default_env_config
from envs.env import make_env
from envs.evaluation.metrics import episode_metrics, oracle_metrics
from envs.evaluation.rollout import Rollout, oracle_inputs, rollout
from envs.opf import baselines, highs_reference, oracle, storage_value
from envs.sim import dispatch, scenarios

HORIZON = 6
EPISODES = 2


@pytest.fixture(scope="module")
def env_params():
    config = default_env_config()
    config.horizon = 2 * HORIZON
    return make_env(config)[1]


def test_controls_round_trip_through_the_env_decoder(env_params):
    n_gen, n_bus = env_params.grid.n_gen, env_params.grid.n_bus
    n_storage = env_params.devices.storage_bus.shape[0]
    amap = dispatch.action_map(env_params.layout, n_gen, n_storage, n_bus)
    controls = jax.random.uniform(jax.random.key(0), amap.covered.shape, minval=-1, maxval=1)
    action = dispatch.controls_to_action(amap, controls, env_params.layout.ctrl_index.shape)
    decoded = dispatch.decode_controls(action, env_params.layout, n_gen, n_storage, n_bus)
    flat = np.concatenate([decoded.gen, decoded.storage, decoded.shed])
    np.testing.assert_allclose(flat[amap.covered], np.asarray(controls)[amap.covered], atol=1e-6)
    assert amap.covered[: n_gen + n_storage].all()  # every unit and battery is steerable


def test_gen_controls_reach_unit_limits(env_params):
    devices = env_params.devices
    state = SimpleNamespace(pg=devices.pmin, available=0.5 * devices.pmax)
    renewable = np.asarray(devices.is_renewable)
    at_min = baselines.gen_controls(jnp.where(renewable, 0.0, devices.pmin), state, env_params)
    at_max = baselines.gen_controls(
        jnp.where(renewable, state.available, devices.pmax), state, env_params
    )
    np.testing.assert_allclose(np.asarray(at_min)[~renewable], -1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(at_max)[~renewable], 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(at_max)[renewable], 0.0, atol=1e-6)  # no curtailment
    live = renewable & (np.asarray(state.available) > 1e-3)
    np.testing.assert_allclose(np.asarray(at_min)[live], -1.0, atol=1e-6)  # all spilled


def _synthetic_record(alive, terminated, cost, demand):
    steps = len(alive)
    info = {
        name: np.zeros((steps, 1))
        for name in (
            "unserved_energy_mwh",
            "gen_cost",
            "shed_mwh",
            "curtailed_mwh",
            "n_overloaded",
            "trips",
            "freq_dev_hz",
            "slack_mw",
            "slack_cost",
            "island_unserved_mwh",
        )
    }
    info.update(cost=np.full((steps, 1), cost), demand_mw=np.full((steps, 1), demand))
    empty = np.zeros((steps, 1, 1))
    return Rollout(
        info,
        np.array(alive)[:, None],
        np.array(terminated)[:, None],
        *([empty] * 12),
        exo_branch_in_service=empty,
        gen_online=empty,
        pg0=np.zeros((1, 1)),
        soc0=np.zeros((1, 1)),
    )


def test_blackout_charges_the_remaining_demand_at_voll(env_params):
    record = _synthetic_record([1, 1, 0, 0], [0, 1, 0, 0], cost=10.0, demand=100.0)
    record = record._replace(pg=np.zeros((4, 1, env_params.grid.n_gen)))
    metrics = episode_metrics(record, env_params)
    consts = env_params.consts
    remaining_mwh = 2 * 100.0 * consts.step_hours
    assert metrics["cost"][0] == pytest.approx(20.0 + consts.voll * remaining_mwh)
    assert metrics["blackouts"][0] == 1.0 and metrics["steps"][0] == 2.0


def test_costs_the_env_already_charged_are_not_added_again(env_params):
    record = _synthetic_record([1, 1, 1], [0, 0, 0], cost=50.0, demand=100.0)
    record = record._replace(pg=np.zeros((3, 1, env_params.grid.n_gen)))
    # step 0: the slack bus supplied 5 MW (priced in info["cost"] as slack_cost);
    # step 1: 2 MWh of UFLS (in cost, VOLL-priced by the env) and 1 MWh lost in an island
    record.info["slack_mw"][0] = 5.0
    record.info["slack_cost"][0] = 7.0
    record.info["unserved_energy_mwh"][1] = 3.0
    record.info["island_unserved_mwh"][1] = 1.0
    metrics = episode_metrics(record, env_params)
    voll = env_params.consts.voll
    assert metrics["cost"][0] == pytest.approx(150.0 + voll * 1.0)
    assert metrics["slack_cost"][0] == pytest.approx(7.0)
    assert metrics["unserved_mwh"][0] == pytest.approx(3.0)


@pytest.fixture(scope="module")
def rollouts(env_params):
    myopic = baselines.myopic_opf_highs(env_params)

    def copy_of_myopic(obs, state, key, args):
        return myopic(obs, state, key, args)

    methods = {
        "myopic": myopic,
        "copy": copy_of_myopic,
        "nothing": baselines.do_nothing(env_params),
        "proportional": baselines.proportional(env_params),
    }
    policies = tuple(methods.values())
    out = {}
    for scenario in ("normal", "cascading_failure"):
        keys = scenarios.eval_keys(scenario, EPISODES)
        index = jnp.int32(scenarios.scenario_id(scenario))
        out[scenario] = {
            name: jax.device_get(rollout(env_params, policies, jnp.int32(i), keys, index, HORIZON))
            for i, name in enumerate(methods)
        }
    return out


@pytest.mark.parametrize("scenario", ["normal", "cascading_failure"])
def test_oracle_never_costs_more_than_the_myopic_opf(env_params, rollouts, scenario):
    model = oracle.dispatch_model(env_params)
    myopic = episode_metrics(rollouts[scenario]["myopic"], env_params)["cost"]
    nothing = episode_metrics(rollouts[scenario]["nothing"], env_params)["cost"]
    inputs = [oracle_inputs(rollouts[scenario]["myopic"], b) for b in range(EPISODES)]
    solutions = [oracle.solve_oracle(model, x) for x in inputs]
    # costs with the stored energy valued alike: the bound holds for the evaluation's accounting
    bound = oracle_metrics(solutions, inputs, model)["cost"]
    assert np.all(bound <= myopic * (1 + 1e-6)) and np.all(bound <= nothing * (1 + 1e-6))
    for solution in solutions:
        assert solution.lower_bound <= solution.total_cost + 1e-6


def test_the_oracle_keeps_the_island_the_env_keeps(env_params, rollouts):
    """Both of the slack's branches out through the episode: under "largest_load" (the
    default) the oracle, as the env, serves the other 13 buses from their own units and the
    stranded slack unit produces nothing; under the slack rule it sheds their load."""
    inputs = oracle_inputs(rollouts["normal"]["myopic"], 0)
    grid = env_params.grid
    at_slack = (np.asarray(grid.branch_from) == grid.slack) | (
        np.asarray(grid.branch_to) == grid.slack
    )
    inputs = inputs._replace(branch_in_service=inputs.branch_in_service & ~at_slack)
    largest = oracle.dispatch_model(env_params)
    assert largest.conventional is not None  # the default: the island with the most load
    slack_rule = dataclasses.replace(env_params.consts, island_rule="slack")
    model = oracle.dispatch_model(env_params.replace(consts=slack_rule))
    assert model.conventional is None
    dark, kept = (oracle.solve_oracle(m, inputs) for m in (model, largest))
    others = np.arange(grid.n_bus) != grid.slack
    demand = np.asarray(inputs.demand_mw)[:, others]
    # shed but what the batteries there can give (the oracle leaves them to their islands)
    battery_mw = float(np.sum(env_params.devices.storage_pmax))
    assert np.all(dark.shed_mw[:, others].sum(axis=1) >= demand.sum(axis=1) - battery_mw - 1e-3)
    # (some shed while the units left ramp up to replace the slack unit)
    assert kept.shed_mw.sum() < 0.1 * dark.shed_mw.sum()
    slack_units = np.asarray(grid.gen_bus) == grid.slack
    np.testing.assert_allclose(kept.pg_mw[:, slack_units], 0.0, atol=1e-6)
    assert kept.total_cost < 0.1 * dark.total_cost


def test_energy_left_in_the_batteries_is_valued_alike_in_every_method_and_the_oracle(
    env_params, rollouts
):
    value = storage_value.stored_energy_value(env_params)
    assert value > 0  # ieee14 has batteries and conventional units
    record = rollouts["normal"]["myopic"]
    metrics = episode_metrics(record, env_params)
    gave_up = metrics["stored_start_mwh"] - metrics["stored_end_mwh"]
    np.testing.assert_allclose(metrics["stored_energy_cost"], value * gave_up, rtol=1e-9)
    # the oracle charges the batteries when what it stores is worth more than it costs, and
    # draws on them when it is worth nothing
    inputs = oracle_inputs(record, 0)
    model = oracle.dispatch_model(env_params)
    start = np.sum(inputs.soc0_mwh)
    ends = {
        worth: np.sum(
            oracle.solve_oracle(
                model._replace(stored_energy_value=worth), inputs
            ).storage_energy_mwh[-1]
        )
        for worth in (0.0, value, 1_000.0)
    }
    assert ends[0.0] < start - 1.0 and ends[1_000.0] > start + 1.0, ends
    assert ends[0.0] <= ends[value] <= ends[1_000.0]
    # the myopic OPF's own model gives stored energy no value
    assert highs_reference.myopic_model(env_params).stored_energy_value == 0.0


def test_a_policy_copying_the_myopic_opf_has_its_gap(env_params, rollouts):
    for runs in rollouts.values():
        myopic = episode_metrics(runs["myopic"], env_params)["cost"]
        copy = episode_metrics(runs["copy"], env_params)["cost"]
        np.testing.assert_allclose(copy, myopic, rtol=1e-6)


def test_every_method_sees_the_same_exogenous_episode(rollouts):
    for runs in rollouts.values():
        reference = oracle_inputs(runs["myopic"], 0)
        for record in runs.values():
            other = oracle_inputs(record, 0)
            np.testing.assert_allclose(other.demand_mw, reference.demand_mw, rtol=1e-6)
            np.testing.assert_allclose(other.available_mw, reference.available_mw, rtol=1e-5)
            np.testing.assert_array_equal(other.branch_in_service, reference.branch_in_service)


def test_delta_mode_controls_are_ramp_fractions(env_params):
    import dataclasses

    params = env_params.replace(consts=dataclasses.replace(env_params.consts, gen_action="delta"))
    devices = params.devices
    conventional = ~np.asarray(devices.is_renewable)
    state = SimpleNamespace(pg=0.5 * devices.pmax, available=devices.pmax)
    up = baselines.gen_controls(state.pg + 0.5 * devices.ramp, state, params)
    np.testing.assert_allclose(np.asarray(up)[conventional], 0.5, atol=1e-6)
    hold = baselines.gen_controls(state.pg, state, params)
    np.testing.assert_allclose(np.asarray(hold)[conventional], 0.0, atol=1e-6)


def test_oracle_sees_the_envs_capped_unit_limits(env_params):
    devices, grid = env_params.devices, env_params.grid
    net = oracle.dispatch_model(env_params).network
    np.testing.assert_allclose(net.gen_pmax, np.asarray(devices.pmax), rtol=1e-6)
    np.testing.assert_allclose(net.gen_pmin, np.asarray(devices.pmin), rtol=1e-6)
    # the connection cap binds somewhere (ieee14 bus 8), so the check has teeth
    assert (np.asarray(devices.pmax) < np.asarray(grid.gen_pmax) - 1.0).any()


def test_proportional_targets_share_the_load_over_all_capacity(env_params):
    devices, grid = env_params.devices, env_params.grid
    assert not np.asarray(devices.pmin).any()  # ieee14: every range starts at 0 MW
    available = np.asarray(devices.pmax) * np.linspace(0.5, 1.0, grid.n_gen)
    available[1] = 0.0  # one unit offline (or becalmed)
    load = 0.4 * available.sum()  # every other unit must run at 40 % of what it has
    demand = np.full(grid.n_bus, (load - float(np.sum(grid.bus_gs))) / grid.n_bus)
    state = SimpleNamespace(available=jnp.asarray(available), demand=jnp.asarray(demand))
    targets = np.asarray(baselines.proportional_targets(state, env_params))
    np.testing.assert_allclose(targets, 0.4 * available, rtol=1e-5, atol=1e-4)


def test_proportional_dispatch_is_not_do_nothing(env_params, rollouts):
    renewable = np.asarray(env_params.devices.is_renewable)
    assert renewable.any()
    for runs in rollouts.values():
        nothing, shared = runs["nothing"], runs["proportional"]
        moved = np.abs(np.asarray(shared.pg) - np.asarray(nothing.pg))[:, :, renewable]
        assert moved.max() > 1.0  # renewables curtailed pro rata, conventional units pick up
        curtailed = episode_metrics(shared, env_params)["curtailed_mwh"]
        assert np.all(curtailed > episode_metrics(nothing, env_params)["curtailed_mwh"])


def test_myopic_opf_keeps_its_rating_margin_free(env_params, rollouts):
    inputs = oracle_inputs(rollouts["normal"]["myopic"], 0)
    per_step = ("demand_mw", "available_mw", "gen_online", "branch_in_service")
    first = inputs._replace(**{name: getattr(inputs, name)[:1] for name in per_step})
    # Tighten the most loaded branch below its flow so that its limit binds.
    free = oracle.solve_oracle(highs_reference.myopic_model(env_params, 0.0), first)
    rating = np.asarray(env_params.grid.branch_rating, np.float64)
    k = int(np.argmax(np.abs(free.flow_mw[0]) / rating))
    tight = rating.copy()
    tight[k] = 0.8 * abs(free.flow_mw[0, k])
    params = env_params.replace(grid=env_params.grid.replace(branch_rating=jnp.asarray(tight)))
    exact = oracle.solve_oracle(highs_reference.myopic_model(params, 0.0), first)
    kept = oracle.solve_oracle(highs_reference.myopic_model(params, 0.1), first)
    assert abs(exact.flow_mw[0, k]) == pytest.approx(tight[k], rel=1e-6)
    assert np.all(np.abs(kept.flow_mw[0]) <= 0.9 * tight + 1e-6)
    assert abs(kept.flow_mw[0, k]) == pytest.approx(0.9 * tight[k], rel=1e-6)
    assert kept.total_cost >= exact.total_cost - 1e-6
    with pytest.raises(ValueError, match="rating_margin"):
        highs_reference.myopic_model(env_params, 1.0)
