"""Bad command lines get one line on stderr, exit status 2, and nothing written."""

import pytest

from tests.launch.test_program import _start_up_error


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--config.learner.learning_rate=-1"],
            "learner.learning_rate=-1.0 is invalid: allowed a number > 0",
        ),
        (["--config.env.case=nonexistent"], "unknown case 'nonexistent'"),
        (
            ["--config.learner.lerning_rate=1e-4"],
            # The nearest name first (learning_rate_decay_updates may follow it).
            "unknown config field learner.lerning_rate; did you mean learner.learning_rate",
        ),
        (["--config.actors.num_envs=2.5"], "--config.actors.num_envs=2.5"),
        (["--config=configs/no_such_preset.py"], "no such preset file"),
        (["--seed=-1"], "config.seed=-1 is invalid"),
        # The default preset starts its prosumer agents, which the hierarchical layout lacks.
        (
            ["--config.env.layout=hierarchical"],
            "learner.type_init_action names agent type 'prosumer', which this layout lacks",
        ),
    ],
    ids=["range", "case", "mistyped_field", "type", "preset", "seed", "agent_type"],
)
def test_a_bad_flag_is_one_line_and_writes_nothing(flags, expected, tmp_path):
    run_dir = tmp_path / "run"
    line = _start_up_error(run_dir, *flags)
    assert expected in line, line
    assert not run_dir.exists(), "nothing may be written before the config is checked"


def test_a_run_dir_that_is_a_file_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert "is not a directory" in _start_up_error(target)
    assert target.read_text() == "keep me"
