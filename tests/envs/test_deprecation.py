"""Renamed public names still resolve for one release, with a warning naming the new one."""

import pytest

from envs.opf import baselines, controls, step_qp


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        (baselines, "step_opf_baseline", "myopic_opf_baseline"),
        (step_qp, "solve_step_opf", "solve_myopic_opf"),
        (controls, "step_opf_controls", "myopic_opf_controls"),
    ],
)
def test_an_old_name_warns_and_is_the_new_one(module, old, new):
    with pytest.warns(FutureWarning, match=f"{old} is renamed {new}"):
        assert getattr(module, old) is getattr(module, new)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        module.nothing_here  # noqa: B018


def test_the_evaluation_rollout_stays_importable_from_the_baselines():
    from envs.evaluation import metrics, rollout

    assert baselines.rollout is rollout.rollout
    assert baselines.Rollout is rollout.Rollout
    assert baselines.oracle_inputs is rollout.oracle_inputs
    assert baselines.episode_metrics is metrics.episode_metrics


def test_the_highs_reference_stays_importable_from_the_baselines():
    from envs.opf import highs_reference

    for name in ("HostStates", "solve_myopic_highs", "myopic_highs_dispatch", "myopic_model"):
        assert getattr(baselines, name) is getattr(highs_reference, name)
