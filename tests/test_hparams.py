"""TensorBoard's HParams dashboard (issue 26 item 5): one session per run.

The event files are read back by TensorBoard's own HParams plugin backend
(`dashboard`: the requests its dashboard sends, over an event multiplexer
of the log directory), not by eye. The comparison's experiment is checked
in tests/test_compare.py, on its comparison.
"""

import json
import os

import numpy as np
import pytest

from keras_dropact import cli
from keras_dropact.training import faults
from keras_dropact.training import hparams
from keras_dropact.training import run_dir as rd
from tests.conftest import tensorflow_only

STATUSES = ("STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING")


def dashboard(logdir):
    """What TensorBoard's HParams dashboard shows for `logdir`: the experiment
    (its hyperparameter names and (group, tag) metrics) and the session
    groups, each {"hparams", "metrics" ((group, tag): mean over its
    sessions), "sessions" [(name, status name)]}."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import backend_context
    from tensorboard.plugins.hparams import get_experiment
    from tensorboard.plugins.hparams import list_session_groups

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    backend = backend_context.Context(base_plugin.TBContext(
        logdir=str(logdir), multiplexer=multiplexer,
        data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(logdir))))
    request = context.RequestContext()
    experiment = get_experiment.Handler(request, backend, "", api_pb2.GetExperimentRequest()).run()
    columns = [api_pb2.ColParams(hparam=h.name) for h in experiment.hparam_infos]
    columns += [api_pb2.ColParams(metric=m.name) for m in experiment.metric_infos]
    groups = list_session_groups.Handler(request, backend, "", api_pb2.ListSessionGroupsRequest(
        col_params=columns, start_index=0, slice_size=1000,
        aggregation_type=api_pb2.AGGREGATION_AVG,
        allowed_statuses=[api_pb2.Status.Value(s) for s in STATUSES])).run().session_groups
    return {
        "hparams": [h.name for h in experiment.hparam_infos],
        "metrics": [(m.name.group, m.name.tag) for m in experiment.metric_infos],
        "groups": [{
            "hparams": {k: _value(v) for k, v in group.hparams.items()},
            "metrics": {(m.name.group, m.name.tag): m.value for m in group.metric_values},
            "sessions": [(s.name, api_pb2.Status.Name(s.status)) for s in group.sessions],
        } for group in groups],
    }


def _value(value):
    kind = value.WhichOneof("kind")
    return getattr(value, kind)


def _json(path):
    with open(path) as f:
        return json.load(f)


def test_hyperparameters_are_the_configurations_but_the_seed_and_paths():
    from keras_dropact import pipelines
    from keras_dropact.training.config import TrainConfig

    config = TrainConfig(model="simple-cnn", dataset="digits", epochs=3, seed=7, run_dir="r",
                         train_size=100, image_size=None)
    values = hparams.run_hparams(config, config.resolved_recipe(), pipelines.info("digits"))
    assert not set(values) & {"seed", "run_dir", "data_dir", "backup_every", "light", "description"}
    assert values["epochs"] == 3 and values["lr"] == config.resolved_recipe().lr
    assert values["augment"] == "none" and values["train_size"] == 100
    assert values["milestones"] == ",".join(map(str, config.resolved_recipe().milestones))
    assert "dropout" not in values and "steps_per_epoch" not in values  # Unset.
    assert all(isinstance(v, (bool, int, float, str)) for v in values.values())


def test_the_end_file_is_replaced_and_a_killed_writers_temporary_removed(tmp_path):
    """A run killed between its session's end and results.json writes the
    end again when resumed: still one end; a temporary of a killed writer
    goes at the resume."""
    from keras_dropact.training.run_files import temporary_path

    folder = tmp_path / rd.TENSORBOARD
    folder.mkdir()
    leftover = temporary_path(str(folder / hparams.SESSION_END))
    open(leftover, "wb").close()
    open(folder / "user.tmp-1", "wb").close()
    rd.RunDir(str(tmp_path)).remove_temporaries()
    assert sorted(os.listdir(folder)) == ["user.tmp-1"]


@pytest.mark.slow
@tensorflow_only
def test_a_run_is_one_session_with_its_hyperparameters_and_final_metrics(digits_run):
    results = _json(os.path.join(digits_run, rd.RESULTS))
    shown = dashboard(digits_run)
    (group,) = shown["groups"]
    assert group["sessions"] == [(rd.TENSORBOARD, "STATUS_SUCCESS")]
    config = results["config"]
    for name in ("model", "dataset", "activation", "p", "recipe", "backend"):
        assert group["hparams"][name] == config[name], name
    assert group["hparams"]["epochs"] == 1 and group["hparams"]["batch_size"] == 32
    assert "seed" not in group["hparams"]
    metrics = group["metrics"]
    assert metrics["", "test_error"] == np.float32(results["test_error"])
    assert metrics["", "test_loss"] == np.float32(results["test_loss"])
    assert metrics["validation", "epoch_accuracy"] == np.float32(results["history"][-1]["val_accuracy"])


@pytest.mark.slow
@tensorflow_only
def test_a_resumed_run_keeps_the_one_session_it_started(tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    argv = ["train", "--model", "simple-cnn", "--dataset", "digits", "--epochs", "2",
            "--steps-per-epoch", "2", "--batch-size", "16", "--backup-every", "1",
            "--run-dir", run]
    monkeypatch.setenv(faults.ENV, "step:3@SIGTERM")
    assert cli.main(argv) == 143
    folder = os.path.join(run, rd.TENSORBOARD)
    with open(os.path.join(folder, hparams.SESSION_START), "rb") as f:
        started = f.read()
    assert not os.path.exists(os.path.join(folder, hparams.SESSION_END))
    (group,) = dashboard(run)["groups"]
    assert group["sessions"] == [(rd.TENSORBOARD, "STATUS_UNKNOWN")]  # Running, to the dashboard.
    monkeypatch.delenv(faults.ENV)
    assert cli.main(["train", "--resume", "--run-dir", run]) == 0
    with open(os.path.join(folder, hparams.SESSION_START), "rb") as f:
        assert f.read() == started  # Not written again: the same session and start time.
    assert sorted(name for name in os.listdir(folder) if "tfevents" in name) == [
        hparams.SESSION_START, hparams.SESSION_END]
    (group,) = dashboard(run)["groups"]
    assert group["sessions"] == [(rd.TENSORBOARD, "STATUS_SUCCESS")]
    assert group["metrics"]["", "test_error"] == np.float32(_json(os.path.join(run, rd.RESULTS))["test_error"])
