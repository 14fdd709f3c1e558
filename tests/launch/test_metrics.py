"""Metric writers: TensorBoard always, the same scalars to Weights & Biases when a project is set.

Both libraries are replaced by recording fakes (``wandb`` through ``sys.modules``), so the test
needs neither installed nor a network.
"""

import sys
import types

import numpy as np
import pytest

from launch import metrics
from tests.launch.tiny import tiny_config


@pytest.fixture
def tensorboard_scalars(monkeypatch):
    """(step, key, value) of every scalar the TensorBoard writer adds; "closed" at close."""
    written = []

    class RecordingSummaryWriter:
        def __init__(self, log_dir, flush_secs):
            del log_dir, flush_secs

        def add_scalar(self, key, value, global_step):
            written.append((global_step, key, value))

        def flush(self):
            pass

        def close(self):
            written.append("closed")

    monkeypatch.setattr("tensorboardX.SummaryWriter", RecordingSummaryWriter)
    return written


@pytest.fixture
def wandb_runs(monkeypatch):
    """The runs a fake ``wandb`` module starts (init keywords, logged dicts, finished)."""
    runs = []

    class FakeRun:
        def __init__(self, **kwargs):
            self.kwargs, self.logged, self.finished = kwargs, [], False
            runs.append(self)

        def log(self, data, step):
            self.logged.append((step, dict(data)))

        def finish(self):
            self.finished = True

    fake = types.ModuleType("wandb")
    fake.init = lambda **kwargs: FakeRun(**kwargs)
    monkeypatch.setitem(sys.modules, "wandb", fake)
    return runs


def test_wandb_run_logs_the_same_scalars_as_tensorboard(tmp_path, tensorboard_scalars, wandb_runs):
    config = tiny_config()
    config.runtime.wandb_project = "grid-tests"
    run_dir = tmp_path / "run_7"
    run_dir.mkdir()
    writer = metrics.open_writer(str(run_dir / "tensorboard"), config, "eval", str(run_dir))
    writer.write(3, {"eval/return": 0.5, "eval/cost": np.float32(1200.0), "eval/bad": np.nan})
    writer.write(4, {"eval/return": 0.75})
    writer.close()

    (run,) = wandb_runs
    logged = [(step, key, value) for step, data in run.logged for key, value in data.items()]
    assert logged == tensorboard_scalars[:-1]
    assert logged == [(3, "eval/return", 0.5), (3, "eval/cost", 1200.0), (4, "eval/return", 0.75)]
    assert run.kwargs["project"] == "grid-tests" and run.kwargs["job_type"] == "eval"
    assert run.kwargs["group"] == "run_7" and run.kwargs["dir"] == str(run_dir)
    assert run.kwargs["config"]["runtime"]["wandb_project"] == "grid-tests"
    assert run.finished and tensorboard_scalars[-1] == "closed"


def test_no_project_means_tensorboard_only(tmp_path, tensorboard_scalars, wandb_runs):
    config = tiny_config()
    assert config.runtime.wandb_project == ""  # off by default
    for run_config in (config, None):
        writer = metrics.open_writer(str(tmp_path), run_config)
        assert isinstance(writer, metrics.TensorBoardWriter)
        writer.write(1, {"learner/loss": 2.0})
        writer.close()
    assert wandb_runs == []
    assert tensorboard_scalars.count((1, "learner/loss", 2.0)) == 2


def test_missing_wandb_names_the_extra(tmp_path, tensorboard_scalars, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    config = tiny_config()
    config.runtime.wandb_project = "grid-tests"
    with pytest.raises(ImportError, match=r"pip install 'gridpod\[wandb\]'"):
        metrics.open_writer(str(tmp_path), config)
    assert tensorboard_scalars == ["closed"]  # the event file is not left open
