"""``benchmarks.agent_ablation``: which agents of a team carry its cost, one type zeroed at a time."""

import numpy as np
import pytest

from benchmarks import agent_ablation
from tests.benchmarks.flags import parsed_flags
from tests.launch.test_evaluate import _tiny_checkpoint


def test_variants_zero_one_type_or_keep_only_one():
    masks = agent_ablation.variant_masks(np.array([0, 1, 1, 2]), ("s", "o", "x"))
    assert list(masks) == [
        "team",
        "without s",
        "without o",
        "without x",
        "only s",
        "only o",
        "only x",
        "teacher",
    ]
    assert masks["without o"].tolist() == [1, 0, 0, 1]
    assert masks["only o"].tolist() == [0, 1, 1, 0]
    assert masks["team"].tolist() == [1] * 4 and masks["teacher"].tolist() == [0] * 4
    two = agent_ablation.variant_masks(np.array([0, 1]), ("a", "b"))
    assert list(two) == ["team", "without a", "without b", "teacher"]


ABLATION_DEFAULTS = {
    "run_dir": "run",
    "steps": [],
    "episodes": 2,
    "scenarios": [],
    "eval_seed": 7,
    "override": [],
}


def _flags(**changes):
    return parsed_flags(ABLATION_DEFAULTS, **changes)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"run_dir": None}, "--run_dir is required"),
        ({"episodes": 0}, "--episodes must be >= 1"),
        ({"eval_seed": 1}, "held-out set"),
        ({"eval_seed": 0}, "held-out set"),
        ({"scenarios": ["normal", "sunny"]}, "unknown ['sunny']"),
        ({"steps": ["40", "last"]}, "'last' is not a checkpoint step"),
        ({"override": ["--config.learner.gamma=0.5"]}, "only the env"),
        ({"override": ["--seed"]}, "expected --config.<field>=<value>"),
    ],
)
def test_bad_flags_are_named_in_one_line(change, words):
    with pytest.raises(ValueError) as error:
        agent_ablation.check_flags(_flags(**change))
    assert words in str(error.value) and "\n" not in str(error.value)
    agent_ablation.check_flags(_flags())  # the defaults run


def test_each_variant_rolls_out_its_own_team_against_the_teacher(tmp_path):
    """The hierarchical team: zeroing everyone is the teacher, and the strategic agent alone
    moves no device (its signals only inform the others), so it costs exactly the teacher's;
    the others move the dispatch. (Setpoints, not bids: the variants are
    under test, and a rollout without the clearing QP compiles in a fraction of the time.)"""
    run_dir = _tiny_checkpoint(tmp_path, env_overrides={"layout": "hierarchical"})
    names = ("normal", "peak_demand")
    rows = agent_ablation.ablate(run_dir / "checkpoints", None, names, 1, eval_seed=7)
    assert set(rows) == set(
        agent_ablation.variant_masks(np.array([0, 1, 2]), ("strategic", "operational", "safety"))
    )
    np.testing.assert_array_equal(rows["teacher"]["cost_vs_teacher"], [1.0, 1.0])
    np.testing.assert_allclose(rows["only strategic"]["cost_vs_teacher"], [1.0, 1.0], rtol=1e-6)
    # under setpoints a fresh team's actions are far from the zero action, so variants differ
    assert np.all(np.abs(rows["team"]["cost_vs_teacher"] - 1.0) > 1e-3)
    assert not np.allclose(
        rows["only operational"]["cost_vs_teacher"], rows["only safety"]["cost_vs_teacher"]
    )
    table = agent_ablation.format_rows(rows, names)
    assert len(table.splitlines()) == 2 + len(rows) and "only safety" in table
    assert table.splitlines()[-1].startswith("teacher mean cost $")
    np.testing.assert_array_equal(rows["team"]["mean_cost"].shape, (2,))


class _AppliesActions:
    """An env whose interface applies the action as it is (``setpoints``)."""

    def setpoints(self, action, state, params):
        return action + 0.0 * state


def test_the_agents_outside_the_mask_act_zero():
    """The variant's action is the team's with the masked agents' rows at zero (a fresh policy
    bids too little to tell variants apart by cost, so the mask is checked on the action)."""
    import jax.numpy as jnp

    bids = jnp.linspace(-1.0, 1.0, 4 * 3).reshape(1, 4, 3)
    team = lambda obs, args: jnp.broadcast_to(bids, (2, 4, 3)) * args[0]  # noqa: E731
    act = agent_ablation.masked_acting(team, _AppliesActions(), None)
    mask = jnp.asarray([1.0, 0.0, 1.0, 0.0])
    got = np.asarray(act(None, jnp.zeros(2), None, (2.0, None, mask)))
    want = np.broadcast_to(2.0 * np.asarray(bids) * np.asarray(mask)[None, :, None], (2, 4, 3))
    np.testing.assert_array_equal(got, want)
    assert np.abs(got[:, 1::2]).sum() == 0.0 and np.abs(got[:, 0::2]).sum() > 0.0


def test_a_run_without_checkpoints_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        agent_ablation.main([], _flags(run_dir=str(tmp_path / "nothing")))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "does not exist" in err and "\n" not in err
