"""DC sensitivities of each outage pattern, cached: the power transfer distribution factors
(PTDF) through which the dispatch LP sees the network, and the flows and angles of an
injection.

Every island is referenced to its own bus (the slack's island to the slack). An episode, or a
myopic rollout, sees few outage patterns, so ``topology`` keeps each one's factors by network
and pattern; ``period_topologies`` stacks the distinct patterns of T periods.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from envs.opf.dc_network import DCNetwork
from envs.powerflow.connectivity import island_labels
from envs.powerflow.ptdf import dc_sensitivities, incidence_matrix


class Topology(NamedTuple):
    """DC sensitivities of one outage pattern; every island is referenced to its own bus."""

    ptdf: np.ndarray  # [L, N] MW of branch flow per MW injected at a bus
    flow_offset_mw: np.ndarray  # [L] flow without injections (phase shifters)
    theta_per_mw: np.ndarray  # [N, N] rad per MW injected (0 at the island references)
    theta_offset_rad: np.ndarray  # [N]
    island: np.ndarray  # [N] int label of the bus's island
    n_islands: int


_TOPOLOGY_CACHE: dict[bytes, Topology] = {}


_TOPOLOGY_CACHE_SIZE = 512


def topology(net: DCNetwork, in_service: np.ndarray) -> Topology:
    """PTDF of the B-theta model: flow = b (theta_f - theta_t - shift), nodal balance A' flow = P.

    Cached by network and outage pattern: an episode (or a myopic rollout) sees few patterns.
    """
    key = b"".join(
        np.ascontiguousarray(a).tobytes()
        for a in (
            net.branch_from,
            net.branch_to,
            net.branch_b_mw_per_rad,
            net.branch_shift_rad,
            np.array([net.slack, net.n_bus]),
            np.packbits(in_service),
        )
    )
    if key not in _TOPOLOGY_CACHE:
        if len(_TOPOLOGY_CACHE) >= _TOPOLOGY_CACHE_SIZE:
            _TOPOLOGY_CACHE.clear()
        _TOPOLOGY_CACHE[key] = _compute_topology(net, in_service)
    return _TOPOLOGY_CACHE[key]


def _compute_topology(net: DCNetwork, in_service: np.ndarray) -> Topology:
    n = net.n_bus
    live = in_service & (net.branch_b_mw_per_rad != 0.0)
    b = np.where(live, net.branch_b_mw_per_rad, 0.0)
    incidence = incidence_matrix(n, net.branch_from, net.branch_to)
    island = island_labels(n, net.branch_from, net.branch_to, live)
    n_islands = int(island.max()) + 1 if n else 0
    reference = np.zeros(n, bool)
    reference[np.unique(island, return_index=True)[1]] = True
    reference[island == island[net.slack]] = False
    reference[net.slack] = True
    ptdf, theta_per_mw, weighted = dc_sensitivities(incidence, b, ~reference)
    theta_offset = theta_per_mw @ (incidence.T @ (b * net.branch_shift_rad))
    flow_offset = weighted @ theta_offset - b * net.branch_shift_rad
    return Topology(ptdf, flow_offset, theta_per_mw, theta_offset, island, n_islands)


class Periods(NamedTuple):
    """The topologies of the T periods, stacked by distinct outage pattern."""

    index: np.ndarray  # [T] pattern of each period
    ptdf: np.ndarray  # [U, L, N]
    flow_offset_mw: np.ndarray  # [U, L]
    theta_per_mw: np.ndarray  # [U, N, N]
    theta_offset_rad: np.ndarray  # [U, N]
    island: np.ndarray  # [T, N]
    n_islands: np.ndarray  # [T]


def period_topologies(net: DCNetwork, in_service: np.ndarray) -> Periods:
    if np.all(in_service == in_service[:1]):  # the common case, without a sort of rows
        patterns, index = in_service[:1], np.zeros(in_service.shape[0], int)
    else:
        patterns, index = np.unique(in_service, axis=0, return_inverse=True)
    topo = [topology(net, p) for p in patterns]
    index = np.ravel(index)
    return Periods(
        index,
        np.stack([t.ptdf for t in topo]),
        np.stack([t.flow_offset_mw for t in topo]),
        np.stack([t.theta_per_mw for t in topo]),
        np.stack([t.theta_offset_rad for t in topo]),
        np.stack([t.island for t in topo])[index],
        np.array([t.n_islands for t in topo])[index],
    )


def network_state(periods: Periods, injection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Branch flows [T, L] (MW) and bus angles [T, N] (rad) of per-period injections."""
    pattern = periods.index
    flow = np.einsum("tln,tn->tl", periods.ptdf[pattern], injection)
    theta = np.einsum("tmn,tn->tm", periods.theta_per_mw[pattern], injection)
    return flow + periods.flow_offset_mw[pattern], theta + periods.theta_offset_rad[pattern]
