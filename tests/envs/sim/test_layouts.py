"""Agent layouts: shapes, masks, device coverage, partitions, and the action scatter."""

import jax.numpy as jnp
import numpy as np
import pytest

from envs import case_setup
from envs.config import CASE_DEVICES, default_env_config
from envs.powerflow.case import Case, load_case
from envs.powerflow.grid import build_grid, generation_cost
from envs.powerflow.matpower import parse_matpower
from envs.sim import devices, layouts
from envs.sim.dispatch import decode_controls
from envs.sim.params import build_params


def _params(case, layout):
    config = default_env_config()
    config.case = case
    config.layout = layout
    grid = build_grid(load_case(case))
    return build_params(config, load_case(case), grid, generation_cost)


@pytest.fixture(scope="module", params=["ieee14", "ieee118"])
def case_params(request):
    case = request.param
    return {name: _params(case, name) for name in layouts.layout_names()}


def _dims(params):
    grid = params.grid
    return grid.n_gen, int(params.devices.storage_bus.shape[0]), grid.n_bus


def _controlled(params, agents):
    """Control-vector slots driven by the given agents (dummy slot removed)."""
    layout = params.layout
    index = np.asarray(layout.ctrl_index)[agents]
    mask = np.asarray(layout.action_mask)[agents]
    return index[mask]


def test_masks_and_indices_are_consistent(case_params):
    for name, params in case_params.items():
        layout = params.layout
        n_gen, n_storage, n_bus = _dims(params)
        total = n_gen + n_storage + n_bus + layout.group_to_device.shape[0] + layout.n_signals
        ctrl = np.asarray(layout.ctrl_index)
        np.testing.assert_array_equal(np.asarray(layout.action_mask), ctrl != total, name)
        assert (ctrl >= 0).all() and (ctrl <= total).all()
        assert np.asarray(layout.action_mask).any(axis=1).all(), f"{name}: idle agent"
        feature_dim = int(np.asarray(layout.obs_index).max())
        assert feature_dim <= _feature_count(params)
        assert layout.agent_const.shape[0] == ctrl.shape[0]
        assert len(layout.agent_type_gamma) == len(layout.agent_type_names)


def _feature_count(params):
    inp_counts = layouts.LayoutInputs(
        n_bus=params.grid.n_bus,
        n_branch=params.grid.n_branch,
        n_gen=params.grid.n_gen,
        n_storage=int(params.devices.storage_bus.shape[0]),
        branch_from=None,
        branch_to=None,
        branch_x=None,
        gen_bus=None,
        storage_bus=None,
        bus_has_load=None,
        is_renewable=None,
        n_regions=params.layout.n_regions,
        reward_weights=(),
    )
    return layouts.feature_blocks(inp_counts)["total"][0]


def test_every_device_has_exactly_one_operating_agent(case_params):
    for name, params in case_params.items():
        layout = params.layout
        n_gen, n_storage, _n_bus = _dims(params)
        names = layout.agent_type_names
        types = np.asarray(layout.agent_type)
        operating = [a for a in range(len(types)) if names[types[a]] not in ("strategic", "safety")]
        slots = _controlled(params, operating)
        assert len(slots) == len(set(slots.tolist())), f"{name}: a device has two owners"
        loads = np.flatnonzero(np.asarray(params.grid.bus_pd) > 0)
        expected = set(range(n_gen + n_storage)) | {n_gen + n_storage + b for b in loads}
        assert set(slots.tolist()) == expected, name


def test_hierarchical_roles_and_horizons(case_params):
    params = case_params["hierarchical"]
    layout = params.layout
    names, types = layout.agent_type_names, np.asarray(layout.agent_type)
    assert names == ("strategic", "operational", "safety")
    assert layout.agent_type_gamma == (0.99, 0.9, 0.0)
    np.testing.assert_array_equal(np.bincount(types), [1, layout.n_regions, 1])
    n_gen, n_storage, n_bus = _dims(params)
    n_device = n_gen + n_storage + n_bus
    strategic = _controlled(params, [0])
    safety = _controlled(params, [len(types) - 1])
    n_group = layout.group_to_device.shape[0]
    assert (strategic >= n_device + n_group).all()  # signals only
    assert ((safety >= n_device) & (safety < n_device + n_group)).all()  # regional overrides
    # the safety agent's groups reach every load bus and every generator
    reach = np.asarray(layout.group_to_device).sum(axis=0)
    loads = np.asarray(params.grid.bus_pd) > 0
    assert (reach[:n_gen] == 1).all()
    assert (reach[n_gen + n_storage :][loads] == 1).all()


def test_per_node_types_follow_the_devices_at_the_bus(case_params):
    params = case_params["per_node"]
    layout = params.layout
    names = layout.agent_type_names
    n_gen, n_storage, _n_bus = _dims(params)
    for agent, type_index in enumerate(np.asarray(layout.agent_type)):
        slots = _controlled(params, [agent])
        kinds = {
            "gen" if s < n_gen else "storage" if s < n_gen + n_storage else "shed" for s in slots
        }
        expected = {
            "consumer": {"shed"},
            "producer": {"gen"},
            "battery": {"storage"},
        }.get(names[type_index])
        if expected is not None:
            assert kinds == expected
        else:
            assert len(kinds) >= 2  # prosumer: load plus generation or storage


def test_spectral_partition_is_balanced_and_covers_all_buses():
    grid = build_grid(load_case("ieee118"))
    args = (grid.n_bus, np.asarray(grid.branch_from), np.asarray(grid.branch_to))
    region = layouts.spectral_partition(*args, np.asarray(grid.branch_x), 4)
    sizes = np.bincount(region, minlength=4)
    assert sizes.sum() == grid.n_bus and sizes.min() >= grid.n_bus // 4 - 1
    # regions are ordered by their lowest bus and the split is reproducible
    firsts = [int(np.flatnonzero(region == k)[0]) for k in range(4)]
    assert firsts == sorted(firsts)
    again = layouts.spectral_partition(*args, np.asarray(grid.branch_x), 4)
    np.testing.assert_array_equal(region, again)
    with pytest.raises(ValueError, match="regions"):
        layouts.spectral_partition(*args, np.asarray(grid.branch_x), 0)


def test_action_scatter_drives_only_the_mapped_device():
    params = _params("ieee14", "per_node")
    layout = params.layout
    n_gen, n_storage, n_bus = _dims(params)
    ctrl = np.asarray(layout.ctrl_index)
    mask = np.asarray(layout.action_mask)
    agent, dim = np.argwhere(mask)[-1]  # some agent's last real dimension
    action = jnp.zeros(ctrl.shape).at[agent, dim].set(0.7)
    # padded dimensions are ignored even when set
    action = jnp.where(jnp.asarray(mask), action, 0.9)
    controls = decode_controls(action, layout, n_gen, n_storage, n_bus)
    flat = np.concatenate([controls.gen, controls.storage, controls.shed])
    expected = np.zeros_like(flat)
    expected[ctrl[agent, dim]] = 0.7
    np.testing.assert_allclose(flat, expected, atol=1e-6)


def test_unknown_layout_is_a_clear_error():
    with pytest.raises(ValueError, match="per_node"):
        layouts.build_layout("ring", None)


def test_control_sources_invert_the_action_scatter_with_shared_slots():
    # agent 0 drives slots 0 and 2, agent 1 drives slot 2 (shared) and slot 1; 4 = padding
    ctrl_index = np.array([[0, 2, 4], [2, 1, 4]], np.int32)
    sources = layouts.control_sources(ctrl_index, 4)
    assert sources.shape == (4, 2)
    action = np.random.default_rng(0).normal(size=ctrl_index.size + 1)
    action[-1] = 0.0  # the zero every padded source reads
    expected = np.zeros(5)
    np.add.at(expected, ctrl_index.reshape(-1), action[:-1])
    np.testing.assert_allclose(action[sources].sum(axis=-1), expected[:4])
    np.testing.assert_array_equal(sources[3], [6, 6])  # an undriven slot sums only zeros


def test_every_layout_sums_actions_into_controls_like_a_scatter(case_params):
    rng = np.random.default_rng(1)
    for name, params in case_params.items():
        layout = params.layout
        ctrl, mask = np.asarray(layout.ctrl_index), np.asarray(layout.action_mask)
        action = rng.uniform(-0.4, 0.4, ctrl.shape).astype(np.float32)
        controls = decode_controls(jnp.asarray(action), layout, *_dims(params))
        n_device = sum(_dims(params))
        flat = np.zeros(ctrl.max() + 1, np.float32)
        np.add.at(flat, ctrl.reshape(-1), np.where(mask, action, 0.0).reshape(-1))
        group = np.asarray(layout.group_to_device)
        device = flat[:n_device] + flat[n_device : n_device + group.shape[0]] @ group
        got = np.concatenate([controls.gen, controls.storage, controls.shed])
        np.testing.assert_allclose(got, np.clip(device, -1, 1), atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name", ["ieee14", "ieee30", "ieee118"])
def test_the_automatic_rule_gives_the_shipped_cases_their_tabled_layout(name):
    case = load_case(name)
    chosen = devices.automatic_devices(case, build_grid(case))
    tabled = CASE_DEVICES[name]
    assert (chosen["layout"], chosen["regions"]) == (tabled["layout"], tabled["regions"])
    assert chosen["wind_buses"] == chosen["solar_buses"] == ()  # no mpc.genfuel
    # one battery per region, at a load bus
    assert len(chosen["storage_buses"]) == chosen["regions"]
    loads = dict(zip(case.bus[:, 0].astype(int), case.bus[:, 2], strict=True))
    assert all(loads[b] > 0 for b in chosen["storage_buses"])


def test_renewables_follow_the_fuel_of_each_bus_first_unit_never_the_slack():
    from tests.envs.powerflow.test_matpower import ODD_CASE

    # gens at buses 10 (slack), 20, 20, 5, 42 (out of service)
    fuels = "mpc.genfuel = {'wind'; 'solar'; 'wind'; 'onwind'; 'solar'};\n"
    case = Case.from_matpower(parse_matpower(ODD_CASE + fuels), name="odd")
    chosen = devices.automatic_devices(case, build_grid(case))
    assert chosen["wind_buses"] == (5,) and chosen["solar_buses"] == (20,)


def test_resolving_an_unknown_case_writes_the_choice_into_the_config(tmp_path):
    from tests.envs.powerflow.test_matpower import ODD_CASE

    path = tmp_path / "odd.m"
    path.write_text(ODD_CASE.replace("\t100\t0\t0\t0\t0\t1\t-360", "\t0\t0\t0\t0\t0\t1\t-360"))
    config = default_env_config()
    config.case = str(path)
    config.solar_buses = (20,)
    notes = case_setup.resolve_env_case(config)
    assert notes[0].startswith("1 of 8 in-service branches have no rating")
    assert notes[-1].startswith("automatic setup of odd: layout per_node, 2 regions")
    assert config.layout == "per_node" and config.regions == 2
    assert tuple(config.solar_buses) == (20,) and tuple(config.wind_buses) == ()
    assert len(config.storage_buses) == 2
    again = default_env_config()
    again.update(config)  # the saved config reproduces the same table
    case = load_case(str(path))
    assert devices.device_table(again, case, build_grid(case)) == {
        "wind_buses": (),
        "solar_buses": (20,),
        "storage_buses": tuple(config.storage_buses),
        "layout": "per_node",
        "regions": 2,
    }
