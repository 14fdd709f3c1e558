"""The host's connectivity (envs.powerflow.connectivity) against a plain sweep from the slack."""

import numpy as np

from envs.powerflow.case import load_case
from envs.powerflow.connectivity import (
    energised_buses,
    island_labels,
    kept_component,
    slack_component,
)
from envs.powerflow.grid import build_grid


def _sweep(n_bus, branch_from, branch_to, slack, closed) -> np.ndarray:
    reached = np.zeros(n_bus, bool)
    reached[slack] = True
    for _ in range(n_bus):
        grown = reached.copy()
        grown[branch_to[closed & reached[branch_from]]] = True
        grown[branch_from[closed & reached[branch_to]]] = True
        reached = grown
    return reached


def test_slack_component_equals_a_plain_sweep_under_random_outages():
    grid = build_grid(load_case("ieee30"))
    f, t = np.asarray(grid.branch_from), np.asarray(grid.branch_to)
    rng = np.random.default_rng(5)
    islanded = 0
    for _ in range(50):
        closed = np.ones(grid.n_branch, bool)
        closed[rng.choice(grid.n_branch, rng.integers(0, 12), replace=False)] = False
        ours = slack_component(grid.n_bus, f, t, grid.slack, closed)
        np.testing.assert_array_equal(ours, _sweep(grid.n_bus, f, t, grid.slack, closed))
        islanded += int(not ours.all())
    assert islanded > 0  # some outage sets island buses
    np.testing.assert_array_equal(
        slack_component(grid.n_bus, f, t, grid.slack), np.asarray(grid.bus_energised0)
    )


def test_island_labels_count_the_components():
    # Buses 0-1-2 joined, 3 alone, 4-5 joined by a closed branch; 2-3 open.
    labels = island_labels(6, [0, 1, 2, 4], [1, 2, 3, 5], [True, True, False, True])
    assert labels.max() + 1 == 3
    assert labels[0] == labels[1] == labels[2] != labels[3] and labels[4] == labels[5]


def test_energised_buses_take_a_grid_and_any_leading_axes():
    grid = build_grid(load_case("ieee14"))
    f, t = np.asarray(grid.branch_from), np.asarray(grid.branch_to)
    closed = np.random.default_rng(2).random((2, 3, grid.n_branch)) > 0.3
    ours = energised_buses(grid, closed)
    assert ours.shape == (2, 3, grid.n_bus)
    for index in np.ndindex(2, 3):
        expected = slack_component(grid.n_bus, f, t, grid.slack, closed[index])
        np.testing.assert_array_equal(ours[index], expected)


def test_the_kept_island_is_the_fed_one_with_the_most_demand_and_the_slacks_on_a_tie():
    # Islands {0, 1, 2} (the slack at 0), {3}, {4, 5}; 2-3 open.
    f, t, closed = [0, 1, 2, 4], [1, 2, 3, 5], [True, True, False, True]

    def kept(demand, has_unit):
        return kept_component(6, f, t, 0, closed, demand, has_unit).nonzero()[0].tolist()

    units = [True, False, False, True, True, False]
    assert kept([0, 10, 0, 50, 20, 20], units) == [3]  # 50 MW beats 10 and 40
    assert kept([0, 10, 0, 5, 20, 20], units) == [4, 5]
    assert kept([0, 40, 0, 5, 20, 20], units) == [0, 1, 2]  # a tie keeps the slack's
    # an island without an online unit is never kept, however much demand it holds
    assert kept([0, 10, 0, 500, 20, 20], [True, False, False, False, True, False]) == [4, 5]
    assert kept([0, 10, 0, 500, 20, 20], [False] * 6) == [0, 1, 2]
