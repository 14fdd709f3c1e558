"""``env.action_interface``: what the environment applies for an agent's action."""

import dataclasses
import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs.action_interface import BID_QP_ITERATIONS
from envs.config import default_env_config
from envs.env import make_env
from envs.opf import baselines, lookahead_qp, storage_value
from envs.sim.dispatch import action_map
from tests.batched_env import reset_batch


def _batch(**fields):
    return _cached_batch(tuple(sorted(fields.items())))


@functools.cache
def _cached_batch(fields):
    config = default_env_config()
    for name, value in fields:
        config[name] = value
    env, params = make_env(config)
    obs, state = reset_batch(jax.random.split(jax.random.key(3), 3), params)
    spec = env.spec(params)
    setpoints = jax.jit(lambda a, s: jax.vmap(env.setpoints, in_axes=(0, 0, None))(a, s, params))
    return params, obs, state, (3, spec.num_agents, spec.action_dim), setpoints


def _map(params):
    n_storage = params.devices.storage_bus.shape[0]
    return action_map(params.layout, params.grid.n_gen, n_storage, params.grid.n_bus)


def test_setpoints_pass_the_action_through():
    _, _, state, shape, setpoints = _batch()
    action = jax.random.uniform(jax.random.key(0), shape, minval=-1.0, maxval=1.0)
    np.testing.assert_array_equal(setpoints(action, state), action)


@pytest.mark.parametrize(
    ("fields", "baseline"),
    [
        ({"action_interface": "merit_residual"}, baselines.merit_order),
        (
            {"action_interface": "bids"},
            partial(baselines.myopic_opf_baseline, max_iter=BID_QP_ITERATIONS),
        ),
        (
            {"action_interface": "bids", "storage_bid_base": "forecast_price"},
            partial(baselines.myopic_opf_valued, max_iter=BID_QP_ITERATIONS),
        ),
        (
            {"action_interface": "bids", "storage_bid_base": "forecast_band"},
            partial(
                baselines.myopic_opf_valued,
                max_iter=BID_QP_ITERATIONS,
                offers=storage_value.banded_offers,
            ),
        ),
    ],
)
def test_a_zero_action_is_the_interface_baseline(fields, baseline):
    params, obs, state, shape, setpoints = _batch(**fields)
    got = setpoints(jnp.zeros(shape), state)
    want = jax.jit(baseline(params))(obs, state, None, None)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_battery_bidding_its_energy_up_holds_it():
    """Zero bids discharge the batteries (the one-step view sees no later use for the energy);
    a high offer on a battery's energy keeps it from discharging. The batteries' bid range is
    their own (``storage_bid_scale``): within the units' 20 $/MWh, below every ieee14 unit's
    marginal cost, a full bid changes nothing. With the default preset's ranges (units 0,
    batteries 100 $/MWh) the units offer at cost whatever their agents bid."""
    from configs.default import get_config

    preset = get_config().env
    params, _, state, shape, setpoints = _batch(
        action_interface="bids",
        bid_scale=preset.bid_scale,
        storage_bid_scale=preset.storage_bid_scale,
    )
    amap = _map(params)
    n_gen, n_storage = params.grid.n_gen, params.devices.storage_bus.shape[0]
    slots = (amap.agent[n_gen : n_gen + n_storage], amap.dim[n_gen : n_gen + n_storage])
    bid = jnp.zeros(shape).at[:, slots[0], slots[1]].set(1.0)
    storage_of = lambda a: np.asarray(a[:, slots[0], slots[1]])  # noqa: E731
    greedy = setpoints(jnp.zeros(shape), state)
    assert np.all(storage_of(greedy) > 0.05)
    assert np.all(storage_of(setpoints(bid, state)) <= 1e-3)
    assert preset.bid_scale == 0.0  # the units' bids move nothing
    units = jnp.zeros(shape).at[:, amap.agent[:n_gen], amap.dim[:n_gen]].set(1.0)
    np.testing.assert_allclose(setpoints(units, state), greedy, atol=1e-5)
    greedy = storage_of(greedy)
    *_, narrow_setpoints = _batch(action_interface="bids", bid_scale=20.0)
    np.testing.assert_allclose(storage_of(narrow_setpoints(bid, state)), greedy, atol=1e-3)


def test_on_the_forecast_price_a_battery_holds_more_and_its_bid_is_added_to_that_price():
    """``storage_bid_base="forecast_price"``: a zero bid offers each battery's energy at the
    price the operator's forecast expects ahead (``envs.opf.storage_value``), so a battery
    discharges no more than at the myopic OPF's zero offer (only its own offer rose), and on
    these states less; a bid of minus that price brings its offer back to zero, and the
    clearing back to the myopic OPF's."""
    fields = {"action_interface": "bids", "bid_scale": 0.0, "storage_bid_scale": 100.0}
    params, _, state, shape, valued = _batch(storage_bid_base="forecast_price", **fields)
    *_, myopic = _batch(**fields)
    amap = _map(params)
    n_gen, n_storage = params.grid.n_gen, params.devices.storage_bus.shape[0]
    slots = (amap.agent[n_gen : n_gen + n_storage], amap.dim[n_gen : n_gen + n_storage])
    storage_of = lambda a: np.asarray(a[:, slots[0], slots[1]])  # noqa: E731
    price = jax.vmap(storage_value.forecast_price, in_axes=(0, None))(state, params)
    assert np.all((np.asarray(price) > 0.0) & (np.asarray(price) < 100.0))
    zero = jnp.zeros(shape)
    held, spent = storage_of(valued(zero, state)), storage_of(myopic(zero, state))
    assert np.all(held <= spent + 1e-4)
    assert np.max(spent - held) > 0.05
    undo = zero.at[:, slots[0], slots[1]].set(-price[:, None] / 100.0)
    np.testing.assert_allclose(valued(undo, state), myopic(zero, state), atol=1e-4)


def test_the_band_is_the_forecast_price_less_the_round_trip_and_without_losses_that_price():
    """``storage_bid_base="forecast_band"``: each battery is offered the present price within
    ``[eta^2, 1] x`` the forecast's price, so it never charges above ``eta^2`` times the price
    its energy is expected to fetch, nor discharges below that price; with lossless batteries
    the band closes on the forecast's price (``forecast_price``'s offers)."""
    params, _, state, *_ = _batch(action_interface="bids", storage_bid_base="forecast_band")
    n_gen = params.grid.n_gen
    of_states = lambda fn, p: np.asarray(jax.vmap(fn, in_axes=(0, None))(state, p))  # noqa: E731
    ahead = of_states(storage_value.forecast_price, params)[:, None]
    eta = params.consts.storage_efficiency
    assert eta < 1.0
    banded = of_states(storage_value.banded_offers, params)
    np.testing.assert_array_equal(banded[:, :n_gen], 0.0)
    assert np.all(banded[:, n_gen:] >= eta * eta * ahead * (1 - 1e-6))
    assert np.all(banded[:, n_gen:] <= ahead * (1 + 1e-6))
    present = of_states(storage_value.present_price, params)[:, None]
    inside = (present > eta * eta * ahead) & (present < ahead)
    np.testing.assert_allclose(banded[:, n_gen:], np.where(inside, present, banded[:, n_gen:]))
    lossless = params.replace(consts=dataclasses.replace(params.consts, storage_efficiency=1.0))
    np.testing.assert_allclose(
        of_states(storage_value.banded_offers, lossless),
        of_states(storage_value.valued_offers, lossless),
        rtol=1e-6,
    )


def test_past_the_days_end_a_zero_bid_offers_the_evaluations_value_of_stored_energy():
    """``storage_bid_base="forecast_to_day_end"``: the forecast's price while the step it is
    taken at lies within the day; from the step where it lies at the day's end, every battery's
    energy at the evaluation's value of stored energy, which ``make_env`` sets for this base."""
    params, _, state, *_ = _batch(action_interface="bids", storage_bid_base="forecast_price")
    config = default_env_config()
    config.action_interface, config.storage_bid_base = "bids", "forecast_to_day_end"
    _, day_end = make_env(config)
    end_value = storage_value.stored_energy_value(params)
    assert end_value > 0.0 and day_end.consts.end_energy_value == pytest.approx(end_value)
    last_within = params.consts.horizon - lookahead_qp.priced_step_ahead() - 1
    early = state.replace(t=jnp.full_like(state.t, last_within))
    late = state.replace(t=jnp.full_like(state.t, last_within + 1))
    of_states = lambda fn, p, s: np.asarray(jax.vmap(fn, in_axes=(0, None))(s, p))  # noqa: E731
    np.testing.assert_allclose(
        of_states(storage_value.bid_base, day_end, early),
        of_states(storage_value.valued_offers, params, early),
        rtol=1e-6,
    )
    n_gen = params.grid.n_gen
    past = of_states(storage_value.bid_base, day_end, late)
    np.testing.assert_array_equal(past[:, :n_gen], 0.0)
    np.testing.assert_allclose(past[:, n_gen:], end_value, rtol=1e-6)
    # the forecast's own price there is another (the next night's), so the base moved it
    forecast = of_states(storage_value.valued_offers, params, late)[:, n_gen:]
    assert np.abs(forecast - end_value).min() > 0.1


def test_a_nonfinite_bid_holds_its_channel_and_the_others_clear():
    params, _, state, shape, setpoints = _batch(action_interface="bids")
    amap = _map(params)
    agent, dim = int(amap.agent[0]), int(amap.dim[0])  # the slot driving unit 0
    bad = jnp.zeros(shape).at[:, agent, dim].set(jnp.nan)
    got = np.array(setpoints(bad, state))
    want = np.asarray(setpoints(jnp.zeros(shape), state))
    assert np.all(np.isnan(got[:, agent, dim]))  # the env holds what a NaN feeds, and counts it
    got[:, agent, dim] = want[:, agent, dim]
    np.testing.assert_array_equal(got, want)


def test_bids_keep_the_strategic_signals_and_drop_the_safety_groups():
    """Hierarchical team: the strategic agent's signals pass through the market; the safety
    agent's regional adjustments are bids like the others, so they leave no setpoint of their
    own (the env would add them to the cleared dispatch)."""
    params, _, state, shape, setpoints = _batch(action_interface="bids", layout="hierarchical")
    amap = _map(params)
    assert amap.signal_slots.any()
    action = jax.random.uniform(jax.random.key(1), shape, minval=-1.0, maxval=1.0)
    got = np.asarray(setpoints(action, state))
    signals = np.broadcast_to(amap.signal_slots, shape)
    np.testing.assert_array_equal(got[signals], np.asarray(action)[signals])
    ctrl = np.asarray(params.layout.ctrl_index)
    n_device = params.grid.n_gen + params.devices.storage_bus.shape[0] + params.grid.n_bus
    group = np.broadcast_to((ctrl >= n_device) & ~amap.signal_slots, shape)
    assert group.any() and np.all(got[group] == 0.0)


def test_regional_unit_offers_leave_the_operational_agents_only_their_batteries():
    """``env.unit_offers="regional"``: the units are offered through the safety agent's
    regional channels; an operational agent chooses only its batteries' bids, and what it
    would write on its units' and loads' slots moves nothing. The slots stay in the layout,
    where the cleared dispatch goes."""
    params, _, state, shape, setpoints = _batch(
        action_interface="bids", layout="hierarchical", unit_offers="regional"
    )
    per_unit, *_ = _batch(action_interface="bids", layout="hierarchical")
    layout = params.layout
    chosen, slots = np.asarray(layout.chosen_mask), np.asarray(layout.action_mask)
    np.testing.assert_array_equal(slots, np.asarray(per_unit.layout.action_mask))
    operational = np.asarray(layout.agent_type) == layout.agent_type_names.index("operational")
    n_gen = params.grid.n_gen
    battery = (np.asarray(layout.ctrl_index) >= n_gen) & (
        np.asarray(layout.ctrl_index) < n_gen + params.devices.storage_bus.shape[0]
    )
    np.testing.assert_array_equal(chosen[operational], (slots & battery)[operational])
    np.testing.assert_array_equal(chosen[~operational], slots[~operational])
    assert chosen[operational].any() and (slots & ~chosen)[operational].any()
    # what no agent chooses bids zero; what the agents choose clears as before
    action = jax.random.uniform(jax.random.key(2), shape, minval=-1.0, maxval=1.0)
    only_chosen = jnp.where(jnp.asarray(chosen), action, 0.0)
    np.testing.assert_array_equal(
        np.asarray(setpoints(action, state)), np.asarray(setpoints(only_chosen, state))
    )
    assert not np.allclose(
        np.asarray(setpoints(only_chosen, state)), np.asarray(setpoints(0.0 * action, state))
    )


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"action_interface": "setpoints"}, "is for env.action_interface='bids'"),
        ({"action_interface": "bids", "bid_scale": 0.0, "storage_bid_scale": 100.0}, "bid_scale=0"),
        ({"action_interface": "bids", "layout": "per_node"}, "needs the hierarchical layout"),
        ({"action_interface": "bids", "unit_offers": "nobody"}, r"env\.unit_offers"),
    ],
)
def test_regional_unit_offers_need_bids_a_unit_range_and_the_hierarchy(fields, words):
    config = default_env_config()
    config.unit_offers = "regional"
    config.update(fields)
    with pytest.raises(ValueError, match=words):
        make_env(config)


def _chosen(**fields):
    config = default_env_config()
    config.update(fields)
    env, params = make_env(config)
    return np.asarray(env.spec(params).action_mask), params


def _slots_of(params, first, end):
    ctrl = np.asarray(params.layout.ctrl_index)
    return np.asarray(params.layout.action_mask) & (ctrl >= first) & (ctrl < end)


@pytest.mark.parametrize(
    "layout_fields", [{}, {"layout": "hierarchical", "unit_offers": "regional"}]
)
def test_offers_only_drops_the_slots_whose_bids_move_nothing(layout_fields):
    """``env.chosen_slots="offers"``: PPO samples only what moves an offer. What it drops (the
    loads' slots and the safety agent's regional shed channels) clears exactly as a zero
    action: it was noise in the policy's ratios."""
    fields = {"action_interface": "bids", **layout_fields}
    every, _ = _chosen(**fields)
    offers, params = _chosen(chosen_slots="offers", **fields)
    dropped = every & ~offers
    n_gen, n_storage = params.grid.n_gen, params.devices.storage_bus.shape[0]
    loads = _slots_of(params, n_gen + n_storage, n_gen + n_storage + params.grid.n_bus)
    assert dropped.any() and not (offers & loads).any()
    np.testing.assert_array_equal(
        offers & _slots_of(params, 0, n_gen + n_storage),
        every & ~loads & _slots_of(params, 0, n_gen + n_storage),
    )
    _, _, state, shape, setpoints = _batch(**fields)
    action = jax.random.uniform(jax.random.key(4), shape, minval=-1.0, maxval=1.0)
    only_dropped = jnp.where(jnp.asarray(dropped), action, 0.0)
    np.testing.assert_array_equal(
        np.asarray(setpoints(only_dropped, state)), np.asarray(setpoints(0.0 * action, state))
    )


def test_the_default_preset_samples_only_the_batteries_slots():
    """The default preset samples only the slots that move an offer, and its units offer at
    cost (bid_scale 0): only the two batteries' agents choose anything, one slot each."""
    from configs.default import get_config

    preset = get_config().env
    assert preset.chosen_slots == "offers"
    offers, params = _chosen(**preset)
    n_gen, n_storage = params.grid.n_gen, params.devices.storage_bus.shape[0]
    np.testing.assert_array_equal(offers, _slots_of(params, n_gen, n_gen + n_storage))
    assert offers.sum() == n_storage and offers.sum(axis=1).max() == 1


@pytest.mark.parametrize("interface", ["setpoints", "merit_residual"])
def test_offers_only_keeps_every_slot_where_each_sets_a_device(interface):
    """Under setpoints every slot sets a device: "offers" keeps the layout's whole mask, so a
    preset that samples only the offers still runs on the other interfaces."""
    every, _ = _chosen(action_interface=interface)
    offers, _ = _chosen(action_interface=interface, chosen_slots="offers")
    np.testing.assert_array_equal(offers, every)


def test_an_unknown_chosen_slots_value_is_refused():
    config = default_env_config()
    config.chosen_slots = "some"
    with pytest.raises(ValueError, match=r"env\.chosen_slots"):
        make_env(config)


def test_bids_with_no_range_at_all_are_refused():
    config = default_env_config()
    config.action_interface, config.bid_scale, config.storage_bid_scale = "bids", 0.0, 0.0
    with pytest.raises(ValueError, match="no bid would move the dispatch"):
        make_env(config)
    config.bid_scale = -1.0
    with pytest.raises(ValueError, match=r"env\.bid_scale"):
        make_env(config)


def test_an_unknown_interface_is_refused():
    config = default_env_config()
    config.action_interface = "oracle"
    with pytest.raises(ValueError, match=r"env\.action_interface"):
        make_env(config)


def test_the_deprecated_runtime_checkpoint_cadence_moves_to_the_learner_with_a_warning():
    # It used to win silently over learner.checkpoint.save_every_updates, so a preset that set
    # it (ieee118) ignored the learning benchmark's cadence.
    from configs.ieee118 import get_config
    from configs.validation import validate_config

    config = get_config()
    assert config.learner.checkpoint.save_every_updates == 200
    config.runtime.checkpoint_every_updates = 40
    with pytest.warns(FutureWarning, match=r"runtime\.checkpoint_every_updates is deprecated"):
        validate_config(config)
    assert config.learner.checkpoint.save_every_updates == 40
    assert config.runtime.checkpoint_every_updates == 0
    config.runtime.checkpoint_every_updates = -1
    with pytest.raises(ValueError, match=r"runtime\.checkpoint_every_updates=-1 is invalid"):
        validate_config(config)


def test_the_deprecated_learner_action_prior_moves_to_the_env_with_a_warning():
    from configs.default import get_config
    from configs.validation import validate_config

    config = get_config()
    config.learner.action_prior = "merit_order"
    config.learner.residual_scale = 3.0
    with pytest.warns(FutureWarning, match=r"learner\.action_prior"):
        validate_config(config)
    assert config.env.action_interface == "merit_residual"
    assert config.env.residual_scale == 3.0
    assert config.learner.action_prior is None
    config.learner.action_prior = "oracle"
    with pytest.raises(ValueError, match=r"learner\.action_prior='oracle'"):
        validate_config(config)


def test_after_an_overload_the_bids_clear_within_the_alarm_margin():
    """``env.alarm_margin``: on the step after a branch in service ran above its rating, zero
    bids clear as the myopic OPF with the wider margin (``myopic_opf_alarm``); with no
    overload, or one on a branch out of service, as the myopic OPF itself."""
    params, obs, state, shape, setpoints = _batch(action_interface="bids", alarm_margin=0.3)
    zero = jnp.zeros(shape)

    def jitted(act):
        return jax.jit(lambda s: act(obs, s, None, None))

    usual = jitted(baselines.myopic_opf_baseline(params, max_iter=BID_QP_ITERATIONS))
    # the myopic OPF under the same rule, the yardstick of such a team: the env's margin
    with_alarm = jitted(baselines.myopic_opf_alarm(params, max_iter=BID_QP_ITERATIONS))
    calm = np.asarray(setpoints(zero, state))
    np.testing.assert_allclose(calm, usual(state), atol=1e-5)
    np.testing.assert_allclose(with_alarm(state), calm, atol=1e-5)
    overloaded = state.replace(overload_count=state.overload_count.at[:, 0].set(1))
    alarmed = np.asarray(setpoints(zero, overloaded))
    np.testing.assert_allclose(alarmed, with_alarm(overloaded), atol=1e-5)
    assert np.abs(alarmed - np.asarray(usual(overloaded))).max() > 1e-2  # the margin binds
    tripped = overloaded.replace(branch_in_service=overloaded.branch_in_service.at[:, 0].set(False))
    np.testing.assert_allclose(setpoints(zero, tripped), usual(tripped), atol=1e-5)
    np.testing.assert_allclose(with_alarm(tripped), usual(tripped), atol=1e-5)


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"action_interface": "setpoints", "alarm_margin": 0.05}, "needs env.action_interface"),
        ({"action_interface": "bids", "alarm_margin": 0.5}, r"env\.alarm_margin=0\.5 is invalid"),
        ({"action_interface": "bids", "alarm_margin": -0.1}, r"env\.alarm_margin"),
    ],
)
def test_an_alarm_margin_outside_the_bids_or_its_range_is_refused(fields, words):
    config = default_env_config()
    config.update(fields)
    with pytest.raises(ValueError, match=words):
        make_env(config)
