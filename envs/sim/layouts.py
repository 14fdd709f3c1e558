"""Agent layouts as data.

A layout says, for every agent, which entries of the grid's *control vector* its action
dimensions drive and which entries of the grid's *feature vector* it observes. The step
function only scatters actions and gathers observations with these index arrays, so a new
layout is a new builder here and never a change to ``envs.env``.

Control vector (length C, plus one dummy slot at index C that swallows padded dims)::

    [ gen channel [G] | storage [S] | shed [N] | group channels [Cg] | signals [K] ]

* gen channel: conventional units -> setpoint (or ramp delta), renewables -> curtailment
  (a >= 0: full availability, a = -1: fully curtailed);
* storage: a * Pmax (positive = discharge); shed: max(a, 0) * curtailable share of load;
* group channels: regional adjustments (used by the safety agent) expanded onto the
  device channels with ``group_to_device`` and *added* to them (then clipped to [-1, 1]);
* signals: the strategic agent's regional signals, held for ``strategic_period`` steps and
  shown to operational agents; they do not act on the physics directly.

Contributions of several agents to the same slot add up (the scatter is an add).

Feature vector (length F, plus a zero slot at index F) — see ``feature_blocks``::

    bus [N, 5]: demand / load_ref, shed fraction, angle (rad), energised, |V| - 1 (0 in DC)
    branch [L, 3]: signed loading flow / rating, in service, overload steps / steps_to_trip
    gen [G, 4]: output / Pmax, reachable upward headroom / Pmax, available / Pmax, online
    storage [S, 2]: state of charge / energy, output / Pmax
    region [K, 5]: demand, generation, headroom, renewable availability, net export
                   (each / total base load)
    signals [K]
    global [8]: df / band, sin and cos of time of day, weekend, served fraction,
                demand / base load, reserve margin, t / horizon

Regions come from ``spectral_partition`` (recursive spectral bisection of the bus graph with
1/|x| edge weights, balanced by the median of the Fiedler vector; regions ordered by their
lowest bus index), because the shipped IEEE cases carry a single area/zone.
"""

from typing import NamedTuple

import numpy as np

BUS_F, BRANCH_F, GEN_F, STORAGE_F, REGION_F, GLOBAL_F = 5, 3, 4, 2, 5, 8
GAMMAS = {"strategic": 0.99, "operational": 0.9, "safety": 0.0}
LAMBDAS = {"strategic": 0.95, "operational": 0.9, "safety": 0.0}
PER_NODE_TYPES = ("producer", "consumer", "prosumer", "battery")
HIERARCHICAL_TYPES = ("strategic", "operational", "safety")
MICROGRID_TYPES = ("microgrid",)


class LayoutInputs(NamedTuple):
    """NumPy description of the grid's devices that layout builders need."""

    n_bus: int
    n_branch: int
    n_gen: int
    n_storage: int
    branch_from: np.ndarray  # [L]
    branch_to: np.ndarray  # [L]
    branch_x: np.ndarray  # [L]
    gen_bus: np.ndarray  # [G]
    storage_bus: np.ndarray  # [S]
    bus_has_load: np.ndarray  # [N] bool
    is_renewable: np.ndarray  # [G] bool
    n_regions: int
    reward_weights: tuple  # (safety, cost, uptime)


class LayoutData(NamedTuple):
    """A built layout in NumPy (converted to ``envs.types.LayoutArrays`` by the env)."""

    name: str
    agent_type: np.ndarray  # [A] int32
    type_names: tuple
    type_gamma: tuple
    type_lambda: tuple
    ctrl_index: np.ndarray  # [A, U] int32
    action_mask: np.ndarray  # [A, U] bool
    ctrl_sources: np.ndarray  # [C, M] int32: flat action entries summed into each control slot
    obs_index: np.ndarray  # [A, Of] int32
    agent_const: np.ndarray  # [A, Oc] float32
    group_to_device: np.ndarray  # [Cg, Cd] float32
    reward_weights: np.ndarray  # [A, 3]
    region_of_bus: np.ndarray  # [N] int32
    n_signals: int


def feature_blocks(inp: LayoutInputs) -> dict[str, tuple[int, int]]:
    """Start offset and width of every block of the feature vector; 'total' is F."""
    sizes = [
        ("bus", inp.n_bus * BUS_F),
        ("branch", inp.n_branch * BRANCH_F),
        ("gen", inp.n_gen * GEN_F),
        ("storage", inp.n_storage * STORAGE_F),
        ("region", inp.n_regions * REGION_F),
        ("signals", inp.n_regions),
        ("global", GLOBAL_F),
    ]
    blocks, offset = {}, 0
    for name, size in sizes:
        blocks[name] = (offset, size)
        offset += size
    blocks["total"] = (offset, 0)
    return blocks


def control_blocks(inp: LayoutInputs, n_group: int) -> dict[str, int]:
    """Start offsets of the control-vector channels; 'total' is C (the dummy slot index)."""
    gen = 0
    storage = gen + inp.n_gen
    shed = storage + inp.n_storage
    group = shed + inp.n_bus
    signals = group + n_group
    return {
        "gen": gen,
        "storage": storage,
        "shed": shed,
        "group": group,
        "signals": signals,
        "total": signals + inp.n_regions,
    }


# ------------------------------------------------------------------------------------------
# Partition
# ------------------------------------------------------------------------------------------


def _fiedler_split(nodes: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sub = weights[np.ix_(nodes, nodes)]
    laplacian = np.diag(sub.sum(1)) - sub
    _, vecs = np.linalg.eigh(laplacian)
    fiedler = vecs[:, 1]
    order = np.argsort(fiedler, kind="stable")
    half = len(nodes) // 2
    return np.sort(nodes[order[:half]]), np.sort(nodes[order[half:]])


def spectral_partition(
    n_bus: int, branch_from: np.ndarray, branch_to: np.ndarray, branch_x: np.ndarray, k: int
) -> np.ndarray:
    """Region index [N] for k regions by recursive spectral bisection (deterministic)."""
    if k < 1 or k > n_bus:
        raise ValueError(f"cannot split {n_bus} buses into {k} regions")
    weights = np.zeros((n_bus, n_bus))
    w = 1.0 / np.maximum(np.abs(branch_x), 1e-6)
    np.add.at(weights, (branch_from, branch_to), w)
    np.add.at(weights, (branch_to, branch_from), w)
    regions = [np.arange(n_bus)]
    while len(regions) < k:
        largest = max(range(len(regions)), key=lambda i: len(regions[i]))
        regions.extend(_fiedler_split(regions.pop(largest), weights))
    regions.sort(key=lambda r: int(r.min()))
    region_of_bus = np.zeros(n_bus, np.int32)
    for index, members in enumerate(regions):
        region_of_bus[members] = index
    return region_of_bus


# ------------------------------------------------------------------------------------------
# Feature index helpers
# ------------------------------------------------------------------------------------------


def _block_rows(blocks, name: str, width: int, rows) -> list[int]:
    start = blocks[name][0]
    return [start + int(r) * width + j for r in rows for j in range(width)]


def _bus_feats(blocks, buses) -> list[int]:
    return _block_rows(blocks, "bus", BUS_F, buses)


def _branch_feats(blocks, branches) -> list[int]:
    return _block_rows(blocks, "branch", BRANCH_F, branches)


def _gen_feats(blocks, gens) -> list[int]:
    return _block_rows(blocks, "gen", GEN_F, gens)


def _storage_feats(blocks, units) -> list[int]:
    return _block_rows(blocks, "storage", STORAGE_F, units)


def _region_feats(blocks, regions) -> list[int]:
    return _block_rows(blocks, "region", REGION_F, regions)


def _global_feats(blocks) -> list[int]:
    start, size = blocks["global"]
    return list(range(start, start + size))


def _signal_feats(blocks) -> list[int]:
    start, size = blocks["signals"]
    return list(range(start, start + size))


def _pad(rows: list[list[int]], fill: int) -> np.ndarray:
    width = max(1, *(len(r) for r in rows))
    out = np.full((len(rows), width), fill, np.int32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def control_sources(ctrl_index: np.ndarray, n_controls: int) -> np.ndarray:
    """[C, M] int32: for each control slot the flat ``[A * U]`` action entries that drive it,
    padded with ``A * U`` (the env reads a zero there). M = the most entries any slot has
    (at least 1). The inverse of ``ctrl_index``, whose padding points at slot C."""
    flat = ctrl_index.reshape(-1)
    used = flat < n_controls
    width = max(1, int(np.bincount(flat[used], minlength=n_controls).max(initial=0)))
    sources = np.full((n_controls, width), flat.size, np.int32)
    filled = np.zeros(n_controls, np.int64)
    for position in np.flatnonzero(used):
        slot = flat[position]
        sources[slot, filled[slot]] = position
        filled[slot] += 1
    return sources


def _one_hot(types: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[types]


def _finish(
    name, inp, types, type_names, gammas, lambdas, ctrl_rows, obs_rows, group, reward_w, regions
):
    ctrl_fill = control_blocks(inp, group.shape[0])["total"]
    ctrl_index = _pad(ctrl_rows, ctrl_fill)
    types = np.asarray(types, np.int32)
    return LayoutData(
        name=name,
        agent_type=types,
        type_names=tuple(type_names),
        type_gamma=tuple(gammas),
        type_lambda=tuple(lambdas),
        ctrl_index=ctrl_index,
        action_mask=ctrl_index != ctrl_fill,
        ctrl_sources=control_sources(ctrl_index, ctrl_fill),
        obs_index=_pad(obs_rows, feature_blocks(inp)["total"][0]),
        agent_const=_one_hot(types, len(type_names)),
        group_to_device=group.astype(np.float32),
        reward_weights=np.asarray(reward_w, np.float32),
        region_of_bus=regions,
        n_signals=inp.n_regions,
    )


def _regions(inp: LayoutInputs) -> np.ndarray:
    return spectral_partition(
        inp.n_bus, inp.branch_from, inp.branch_to, inp.branch_x, inp.n_regions
    )


def _pad_sections(agent_sections: list[list[list[int]]], fill: int) -> list[list[int]]:
    """Pad each section to its widest instance so a position means the same for every agent."""
    n_sections = len(agent_sections[0])
    widths = [max(len(a[s]) for a in agent_sections) for s in range(n_sections)]
    return [
        [i for s in range(n_sections) for i in a[s] + [fill] * (widths[s] - len(a[s]))]
        for a in agent_sections
    ]


def _devices_by_bus(inp: LayoutInputs):
    gens_at = [np.flatnonzero(inp.gen_bus == b).tolist() for b in range(inp.n_bus)]
    storage_at = [np.flatnonzero(inp.storage_bus == b).tolist() for b in range(inp.n_bus)]
    return gens_at, storage_at


def _incident(inp: LayoutInputs, buses) -> list[int]:
    member = np.zeros(inp.n_bus, bool)
    member[list(buses)] = True
    return np.flatnonzero(member[inp.branch_from] | member[inp.branch_to]).tolist()


def _node_type(has_load: bool, has_gen: bool, has_storage: bool) -> int:
    if (has_load and (has_gen or has_storage)) or (has_gen and has_storage):
        return PER_NODE_TYPES.index("prosumer")
    if has_load:
        return PER_NODE_TYPES.index("consumer")
    if has_gen:
        return PER_NODE_TYPES.index("producer")
    return PER_NODE_TYPES.index("battery")


def per_node_layout(inp: LayoutInputs) -> LayoutData:
    """One agent per bus that has a load, a generator or a battery, typed by what it holds."""
    regions = _regions(inp)
    blocks, ctrl = feature_blocks(inp), control_blocks(inp, 0)
    gens_at, storage_at = _devices_by_bus(inp)
    types, ctrl_sections, obs_sections = [], [], []
    for b in range(inp.n_bus):
        has_load, gens, units = bool(inp.bus_has_load[b]), gens_at[b], storage_at[b]
        if not (has_load or gens or units):
            continue
        types.append(_node_type(has_load, bool(gens), bool(units)))
        ctrl_sections.append(
            [
                [ctrl["gen"] + g for g in gens],
                [ctrl["storage"] + s for s in units],
                [ctrl["shed"] + b] if has_load else [],
            ]
        )
        branches = _incident(inp, [b])
        neighbours = sorted(
            {int(inp.branch_from[i]) for i in branches} | {int(inp.branch_to[i]) for i in branches}
        )
        neighbours = [n for n in neighbours if n != b]
        obs_sections.append(
            [
                _bus_feats(blocks, [b]),
                _branch_feats(blocks, branches),
                _bus_feats(blocks, neighbours),
                _gen_feats(blocks, gens),
                _storage_feats(blocks, units),
                _region_feats(blocks, [regions[b]]),
                _global_feats(blocks),
            ]
        )
    n = len(types)
    return _finish(
        "per_node",
        inp,
        types,
        PER_NODE_TYPES,
        (0.99,) * 4,
        (0.95,) * 4,
        _pad_sections(ctrl_sections, ctrl["total"]),
        _pad_sections(obs_sections, blocks["total"][0]),
        np.zeros((0, ctrl["group"]), np.float32),
        [inp.reward_weights] * n,
        regions,
    )


def _region_members(inp: LayoutInputs, regions: np.ndarray, k: int):
    buses = np.flatnonzero(regions == k).tolist()
    gens = np.flatnonzero(regions[inp.gen_bus] == k).tolist()
    units = np.flatnonzero(regions[inp.storage_bus] == k).tolist() if inp.n_storage else []
    loads = [b for b in buses if inp.bus_has_load[b]]
    return buses, gens, units, loads


def _regional_sections(inp, blocks, ctrl, regions, k):
    buses, gens, units, loads = _region_members(inp, regions, k)
    ctrl_s = [
        [ctrl["gen"] + g for g in gens],
        [ctrl["storage"] + s for s in units],
        [ctrl["shed"] + b for b in loads],
    ]
    obs_s = [
        _bus_feats(blocks, buses),
        _branch_feats(blocks, _incident(inp, buses)),
        _gen_feats(blocks, gens),
        _storage_feats(blocks, units),
        _region_feats(blocks, range(inp.n_regions)),
        _signal_feats(blocks),
        _global_feats(blocks),
    ]
    return ctrl_s, obs_s


def _loading_feats(blocks, n_branch: int) -> list[int]:
    start = blocks["branch"][0]
    return [start + i * BRANCH_F for i in range(n_branch)]


def _safety_groups(inp: LayoutInputs, regions: np.ndarray, ctrl) -> np.ndarray:
    """Three regional channels per region: shed, conventional bias, renewable bias."""
    group = np.zeros((3 * inp.n_regions, ctrl["group"]), np.float32)
    for k in range(inp.n_regions):
        _, gens, _, loads = _region_members(inp, regions, k)
        group[3 * k, [ctrl["shed"] + b for b in loads]] = 1.0
        conv = [g for g in gens if not inp.is_renewable[g]]
        renew = [g for g in gens if inp.is_renewable[g]]
        group[3 * k + 1, [ctrl["gen"] + g for g in conv]] = 1.0
        group[3 * k + 2, [ctrl["gen"] + g for g in renew]] = 1.0
    return group


def hierarchical_layout(inp: LayoutInputs) -> LayoutData:
    """Strategic agent + one operational agent per region + a one-step safety agent."""
    regions = _regions(inp)
    n_group = 3 * inp.n_regions
    blocks, ctrl = feature_blocks(inp), control_blocks(inp, n_group)
    k_all = range(inp.n_regions)
    strategic_ctrl = [[ctrl["signals"] + k for k in k_all], [], []]
    system_view = [
        _loading_feats(blocks, inp.n_branch),
        [],
        _storage_feats(blocks, range(inp.n_storage)),
        [],
        _region_feats(blocks, k_all),
        _signal_feats(blocks),
        _global_feats(blocks),
    ]
    ctrl_sections, obs_sections = [strategic_ctrl], [system_view]
    for k in k_all:
        ctrl_s, obs_s = _regional_sections(inp, blocks, ctrl, regions, k)
        ctrl_sections.append(ctrl_s)
        obs_sections.append(obs_s)
    ctrl_sections.append([[ctrl["group"] + j for j in range(n_group)], [], []])
    obs_sections.append(system_view)
    names = HIERARCHICAL_TYPES
    types = [0] + [1] * inp.n_regions + [2]
    safety_w = (1.0, 0.0, 0.0)
    return _finish(
        "hierarchical",
        inp,
        types,
        names,
        tuple(GAMMAS[n] for n in names),
        tuple(LAMBDAS[n] for n in names),
        _pad_sections(ctrl_sections, ctrl["total"]),
        _pad_sections(obs_sections, blocks["total"][0]),
        _safety_groups(inp, regions, ctrl),
        [inp.reward_weights] * (inp.n_regions + 1) + [safety_w],
        regions,
    )


def microgrid_layout(inp: LayoutInputs) -> LayoutData:
    """Networked microgrids: one agent per region controlling all of its own devices."""
    regions = _regions(inp)
    blocks, ctrl = feature_blocks(inp), control_blocks(inp, 0)
    sections = [_regional_sections(inp, blocks, ctrl, regions, k) for k in range(inp.n_regions)]
    return _finish(
        "microgrid",
        inp,
        [0] * inp.n_regions,
        MICROGRID_TYPES,
        (0.99,),
        (0.95,),
        _pad_sections([c for c, _ in sections], ctrl["total"]),
        _pad_sections([o for _, o in sections], blocks["total"][0]),
        np.zeros((0, ctrl["group"]), np.float32),
        [inp.reward_weights] * inp.n_regions,
        regions,
    )


LAYOUT_BUILDERS = {
    "per_node": per_node_layout,
    "hierarchical": hierarchical_layout,
    "microgrid": microgrid_layout,
}
# Each layout's agent types, whatever the grid: config checks name them before a grid is built.
LAYOUT_TYPE_NAMES = {
    "per_node": PER_NODE_TYPES,
    "hierarchical": HIERARCHICAL_TYPES,
    "microgrid": MICROGRID_TYPES,
}


def layout_names() -> tuple[str, ...]:
    return tuple(LAYOUT_BUILDERS)


def battery_slots_of_operational_agents(data: LayoutData, inp: LayoutInputs) -> np.ndarray:
    """[A, U] bool: the slots an agent chooses when the units are offered regionally
    (``env.unit_offers="regional"``, hierarchical layout): every slot of the strategic and the
    safety agent, and only the batteries' of the operational agents. Their units' and loads'
    slots stay in the layout, where the env writes the cleared dispatch; only the choice goes."""
    if data.name != "hierarchical":
        raise ValueError(
            f"env.unit_offers='regional' needs the hierarchical layout (its safety agent's "
            f"regional channels offer the units); this grid's layout is {data.name!r}"
        )
    ctrl = control_blocks(inp, data.group_to_device.shape[0])
    battery = (data.ctrl_index >= ctrl["storage"]) & (data.ctrl_index < ctrl["shed"])
    operational = data.agent_type == data.type_names.index("operational")
    return data.action_mask & (battery | ~operational[:, None])


def slots_that_move_offers(data: LayoutData, inp: LayoutInputs, units_bid: bool) -> np.ndarray:
    """[A, U] bool: the layout's slots whose bid moves an offer under ``bids``. A battery's
    always moves its own; a unit's only where the units bid (``units_bid``); a group channel
    where it drives one of those; a strategic signal is kept (the others read it). A load's
    never moves one: the clearing sets the shedding."""
    n_group = data.group_to_device.shape[0]
    ctrl = control_blocks(inp, n_group)
    device_moves = np.zeros(ctrl["group"], bool)
    device_moves[ctrl["storage"] : ctrl["shed"]] = True
    device_moves[ctrl["gen"] : ctrl["storage"]] = units_bid
    group_moves = (np.asarray(data.group_to_device) != 0)[:, device_moves].any(axis=1)
    moves = np.concatenate(
        [device_moves, group_moves, np.ones(ctrl["total"] - ctrl["signals"] + 1, bool)]
    )  # the signals, and the dummy slot of padded entries (masked out by the layout)
    return data.action_mask & moves[np.asarray(data.ctrl_index)]


def build_layout(name: str, inp: LayoutInputs) -> LayoutData:
    """Build a layout by name (ValueError naming the allowed layouts otherwise)."""
    if name not in LAYOUT_BUILDERS:
        raise ValueError(f"unknown layout {name!r}; allowed: {layout_names()}")
    return LAYOUT_BUILDERS[name](inp)
