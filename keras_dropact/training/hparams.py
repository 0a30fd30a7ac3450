"""TensorBoard's HParams dashboard: each run's hyperparameters and final metrics.

Every run that keeps TensorBoard logs (all but `light` ones) writes two
event files into RUN_DIR/tensorboard/, beside the `train/` and
`validation/` folders of Keras' TensorBoard callback:

    events.out.tfevents.dropact-1-session-start  the session's start: the
        run's hyperparameters (`run_hparams`), when training starts (the
        model built and restored: a run stopped before has no session)
    events.out.tfevents.dropact-2-session-end    when it ends: the scalars
        test_error and test_loss (a finished run), and the session's end,
        STATUS_SUCCESS (finished) or STATUS_FAILURE (diverged)

The dashboard reads the session's metrics from there ("test_error") and
from the callback's folders (group "train" or "validation": "epoch_loss",
"epoch_accuracy").

One session per run, resumed or not: each file has a fixed name and is
written whole under the tool's temporary name, then renamed
(`run_files.atomic_write`). The start is written only where it is absent,
so a resumed run keeps the session it started (and its start time), and a
run of an earlier version gets one when it resumes; the end replaces the
end of a run killed before its results.json.

The seed is no hyperparameter here, nor are paths (`run_dir`,
`data_dir`), the digests of a user's model files (`model_sha256`,
`weights_sha256`) or how the run keeps its state (`backup_every`, `light`): runs
that differ only in their seed are one session group, TensorBoard's
repeated trials, whose metrics the dashboard averages (or takes their
minimum, maximum or median); each run is one session, named by its folder.

`write_experiment(folder, hparams)` writes the experiment of a comparison
(`dropact compare`: OUT/tensorboard/): its hyperparameters, with the values
its arms take, and these metrics, so that TensorBoard pointed at OUT shows
the arms side by side.

The event files are written here, without TensorFlow, through
TensorBoard's own protocol buffers (`tensorboard.plugins.hparams.api`).
"""

import dataclasses
import io
import json
import os
import time

from keras_dropact.training import run_files

SESSION_START = "events.out.tfevents.dropact-1-session-start"
SESSION_END = "events.out.tfevents.dropact-2-session-end"
EXPERIMENT = "events.out.tfevents.dropact-experiment"
# Every file this module writes, for `RunDir.remove_temporaries`.
FILES = (SESSION_START, SESSION_END, EXPERIMENT)
# TrainConfig fields that are not hyperparameters (see the module docstring).
NOT_HPARAMS = ("run_dir", "data_dir", "seed", "backup_every", "light", "model_sha256", "weights_sha256")
# The final metrics of a run: written by `write_session_end`, listed by `write_experiment`.
TEST_METRICS = ("test_error", "test_loss")
# What Keras' TensorBoard callback writes per epoch, in the session's folders.
EPOCH_METRICS = ("epoch_accuracy", "epoch_loss")
EPOCH_GROUPS = ("validation", "train")


def run_hparams(config, recipe, info):
    """{name: bool, number or str}: the hyperparameters of the run of
    `config` (a TrainConfig) with its resolved `recipe`, on the data `info`
    (`pipelines.info`): the configuration's fields but `NOT_HPARAMS`, with
    the recipe's values where the configuration leaves them to it, the
    augmentation and the number of training examples. Lists are joined
    with commas; unset (None) values are left out."""
    values = {name: value for name, value in config.to_dict().items() if name not in NOT_HPARAMS}
    values.update((name, value) for name, value in dataclasses.asdict(recipe).items()
                  if name != "description")
    values["augment"] = config.augmentation(info) or "none"
    values["train_size"] = config.train_examples(info)
    return {name: _hparam_value(value) for name, value in sorted(values.items())
            if value is not None}


def _hparam_value(value):
    """`value` as HParams holds it: a bool, number or string."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return json.dumps(value, sort_keys=True)


def write_session_start(folder, hparams):
    """The session start of a run with `hparams` in its tensorboard `folder`,
    unless it is there (a resumed run keeps its session)."""
    from tensorboard.plugins.hparams import api

    path = os.path.join(folder, SESSION_START)
    if os.path.lexists(path):
        return
    os.makedirs(folder, exist_ok=True)
    _write_events(path, [(0, api.hparams_pb(hparams))])


def write_session_end(folder, results):
    """The end of the run's session from its `Results`: test_error and
    test_loss (finished), and the status; replaces an earlier end."""
    from tensorboard.plugins.scalar import summary_v2

    step = results.epochs_completed
    summaries = [(step, summary_v2.scalar_pb(name, results[name]))
                 for name in TEST_METRICS if results[name] is not None]
    summaries.append((step, _session_end(results.status == "finished")))
    os.makedirs(folder, exist_ok=True)
    _write_events(os.path.join(folder, SESSION_END), summaries)


def _session_end(succeeded):
    """The `Summary` ending a session, with STATUS_SUCCESS or STATUS_FAILURE
    (what `tensorboard.plugins.hparams.summary.session_end_pb` writes,
    without the TensorFlow that module imports)."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams import plugin_data_pb2

    end = plugin_data_pb2.SessionEndInfo(
        status=api_pb2.STATUS_SUCCESS if succeeded else api_pb2.STATUS_FAILURE,
        end_time_secs=time.time())
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=metadata.SESSION_END_INFO_TAG, tensor=metadata.NULL_TENSOR,
        metadata=metadata.create_summary_metadata(
            plugin_data_pb2.HParamsPluginData(session_end_info=end)))
    return summary


def write_experiment(folder, runs):
    """The experiment of a comparison into its `folder` (replacing an
    earlier one): every hyperparameter of `runs` (the `run_hparams` of each
    run) with the values the runs take, and the test and epoch metrics."""
    from tensorboard.plugins.hparams import api

    values = {}
    for hparams in runs:
        for name, value in hparams.items():
            values.setdefault(name, []).append(value)
    hparams = [api.HParam(name, _domain(api, values[name])) for name in sorted(values)]
    metrics = [api.Metric(name, display_name=name.replace("_", " ")) for name in TEST_METRICS]
    metrics += [api.Metric(name, group=group, display_name=f"{name.removeprefix('epoch_')} ({group})")
                for group in EPOCH_GROUPS for name in EPOCH_METRICS]
    os.makedirs(folder, exist_ok=True)
    _write_events(os.path.join(folder, EXPERIMENT), [(0, api.hparams_config_pb(hparams, metrics))])


def _domain(api, values):
    """The discrete domain of one hyperparameter's values: numbers, if the
    runs give it integers and floats, strings if other kinds mix."""
    kinds = {type(value) for value in values}
    if kinds == {int, float}:
        values = [float(value) for value in values]
    elif len(kinds) > 1:
        values = [str(value) for value in values]
    return api.Discrete(sorted(set(values)))


def _write_events(path, summaries):
    """An event file at `path` (atomically) holding `summaries`, (step,
    `Summary`) pairs, after the file-version event every event file starts with."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    now = time.time()
    buffer = io.BytesIO()
    records = RecordWriter(buffer)
    records.write(event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
    for step, summary in summaries:
        records.write(event_pb2.Event(wall_time=now, step=step, summary=summary).SerializeToString())
    with run_files.atomic_write(path) as temporary, open(temporary, "wb") as f:
        f.write(buffer.getvalue())
