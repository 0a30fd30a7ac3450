"""`publish(run_dir, out)`: a finished run as a model anyone loads with one call.

    publish("runs/digits", "published/digits-dropact")     # a folder
    publish("runs/digits", "hf://USER/digits-dropact")      # the Hugging Face Hub
    model = keras_dropact.models.from_preset("published/digits-dropact")

The folder (`models.published`: keras-hub's preset layout, which Keras'
`load_model` reads too) holds config.json and model.weights.h5 (the run's
final model behind a `Rescaling` layer that applies the dataset's
normalisation, so that it takes raw images), metadata.json and README.md,
a model card with Hugging Face's front matter (`model_card`). The figures
come from the run's own records: results.json, dataset.json, config.json,
and, for a run of `dropact compare`, the comparison's report (`comparison`,
which `dropact publish` reads through `repro.compare.comparison_of_run`).

Refused with one line before anything is written: a run that has not
finished (no results.json), that diverged, or that keeps no model.keras
(a light run); an OUT that exists and is not an empty folder (an
`hf://` repository that holds files). The folder is built as a temporary
folder next to OUT (`run_files.atomic_folder`: `.NAME.tmp-HOST-PID`),
checked there (loaded back with `from_preset`, its predictions compared
with the run's model on the same raw inputs) and only then renamed to OUT:
a killed or failed publish leaves nothing half-written, and the next
publish to OUT removes such a folder of a process that is gone. An
`hf://` target is built in a temporary folder of the system's, uploaded in
one commit (`hub`) and removed.
"""

import os
import tempfile
import time

import keras
import numpy as np

from keras_dropact.models import published
from keras_dropact.pipelines import augment
from keras_dropact.training import artifacts
from keras_dropact.training import faults
from keras_dropact.training import hub
from keras_dropact.training import model_card
from keras_dropact.training import run_files
from keras_dropact.training import serving
from keras_dropact.training import sources
from keras_dropact.training.export import TOLERANCE
from keras_dropact.training.export import probe_inputs
from keras_dropact.training.results import read_results
from keras_dropact.training.run_dir import CONFIG
from keras_dropact.training.run_dir import MODEL
from keras_dropact.training.stops import CannotWrite
from keras_dropact.training.stops import resume_command

DEFAULT_LICENSE = "apache-2.0"
FORMAT = "keras-dropact published model"
FORMAT_VERSION = 1


def publish(run_dir, out, license=DEFAULT_LICENSE, comparison=None, private=False):
    """Publishes the finished run in `run_dir` to `out`, a new or empty
    folder or `hf://USER/NAME` (see the module docstring).

    Args:
        license: the model's licence, a Hugging Face licence identifier.
        comparison: what `repro.compare.comparison_of_run(run_dir)` says
            of the run's arm, or None (not a run of `dropact compare`).
        private: an `hf://` repository that does not exist is created private.

    Returns:
        {"path", "name", "test_error", "max_abs_difference"}.

    Raises:
        ValueError, FileExistsError, FileNotFoundError, RuntimeError: refused
            (one line), nothing written.
        MissingExtraError: `hf://` without the `hub` extra.
        stops.CannotWrite: a file could not be written (a full disk).
    """
    check_license(license)
    repo_id = published.hub_repo_id(out)
    api = hub.client() if repo_id else None
    if repo_id is None:
        _check_out(out)
    source, results = finished_run(run_dir)
    if api is not None:
        hub.check_empty(api, repo_id)
    name = repo_id.split("/")[1] if repo_id else os.path.basename(os.path.abspath(out))
    model = artifacts.load_model(source.model_file)
    spec = serving.ServingSpec.for_record(source.record, model)
    model_for_raw = for_raw_inputs(model, spec, name)
    context = {"name": name, "license": license, "comparison": comparison, "location": out}
    if repo_id is None:
        difference = _publish_folder(out, model, model_for_raw, spec, source, results, context)
    else:
        with tempfile.TemporaryDirectory(prefix="dropact-publish-") as folder:
            difference = _write(folder, model, model_for_raw, spec, source, results, context)
            hub.upload(api, repo_id, folder, private, f"dropact publish {os.path.basename(run_dir)}")
    return {"path": out, "name": name, "test_error": results.test_error,
            "max_abs_difference": difference}


def check_license(license):
    """ValueError unless `license` looks like a licence identifier (`apache-2.0`, `mit`, `other`)."""
    if not (isinstance(license, str) and license and len(license) <= 64
            and license.replace("-", "").replace(".", "").replace("+", "").isalnum()
            and license == license.lower()):
        raise ValueError(
            f"--license {license!r} is not a licence identifier: write Hugging Face's, in lower "
            "case, e.g. apache-2.0, mit, cc-by-4.0 or other."
        )


def _check_out(out):
    """Refuses an OUT that is not a new or empty folder, or lies under a file."""
    if os.path.lexists(out) and not run_files.is_empty_folder(out):
        what = ("a link" if os.path.islink(out) else "not a folder" if not os.path.isdir(out)
                else "not empty")
        raise FileExistsError(
            f"{out!r} exists and is {what}; refusing to publish over it. Publish into a new "
            "or empty folder. Nothing was written."
        )
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"{out!r} lies under the file {parent!r}; publish into a folder.")


def finished_run(run_dir):
    """The `sources.Source` and `Results` of the finished run in `run_dir`.

    Raises:
        FileNotFoundError: not a run directory.
        ValueError: the run has not finished, diverged, or keeps no model.
        RuntimeError: a run file is damaged (one line naming it).
    """
    if not os.path.isfile(os.path.join(run_dir, CONFIG)):
        raise FileNotFoundError(
            f"{run_dir!r} is not a run directory of `dropact train` (it holds no {CONFIG})."
        )
    results = read_results(run_dir)
    if results is None:
        raise ValueError(
            f"{run_dir!r} has not finished (no results.json): there is no final model to "
            f"publish. Finish it with `{resume_command(run_dir)}`, then publish it."
        )
    if results.status != "finished":
        raise ValueError(
            f"{run_dir!r} diverged at optimizer step {results.diverged_at_step}: it has no "
            "model to publish. Train it again with a lower --lr."
        )
    if not os.path.isfile(os.path.join(run_dir, MODEL)):
        raise ValueError(
            f"{run_dir!r} keeps no {MODEL} (a light run, or a file moved away): there is no "
            "final model to publish."
        )
    return sources.resolve(run_dir), results


def for_raw_inputs(model, spec, name):
    """The trained `model` behind the normalisation of its test pipeline: a
    model that takes the dataset's raw values (`spec`: a
    `serving.ServingSpec`) and gives what `model.predict` gives on the
    normalised ones. Signals used as generated (mnist1d) need none."""
    inputs = keras.Input(spec.shape, name="image" if spec.is_image else "signal")
    rescale = augment.normalisation_layer(spec.normalisation, spec.shape[-1])
    outputs = model(inputs if rescale is None else rescale(inputs))
    return keras.Model(inputs, outputs, name=_model_name(name))


def _model_name(name):
    """`name` as a Keras model's name (letters, digits, `_`, `-`, `.`)."""
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name) or "model"


def _publish_folder(out, model, model_for_raw, spec, source, results, context):
    """Writes the folder `out` through its temporary folder; returns the
    checked difference to `model.predict`."""
    out = out.rstrip(os.sep) or out
    parent = os.path.dirname(os.path.abspath(out))
    with run_files.made_folders(parent):
        run_files.remove_stale_folders(parent, name=os.path.basename(os.path.abspath(out)))
        try:
            with run_files.atomic_folder(out, before_rename=lambda: faults.point("publish"),
                                         empty_ok=True) as temporary:
                return _write(temporary, model, model_for_raw, spec, source, results, context)
        except CannotWrite as error:
            error.advise("nothing was published; free space, then publish again")
            raise


def _write(folder, model, model_for_raw, spec, source, results, context):
    """The published files in `folder`, checked (`check`); returns the difference."""
    config = keras.saving.serialize_keras_object(model_for_raw)
    for key in ("compile_config", "build_config"):  # As keras-hub saves a preset.
        config.pop(key, None)
    run_files.write_json(os.path.join(folder, published.CONFIG), config)
    model_for_raw.save_weights(os.path.join(folder, published.WEIGHTS))
    difference = check(folder, model, spec)
    metadata = build_metadata(model_for_raw, spec, source, results, context, difference)
    run_files.write_json(os.path.join(folder, published.METADATA), metadata)
    run_files.write_text(os.path.join(folder, published.MODEL_CARD),
                         model_card.markdown(metadata, context["location"]))
    return difference


def check(folder, model, spec):
    """Largest |from_preset(folder).predict(raw) - model.predict(normalised raw)|
    on a random batch of raw inputs (`export.probe_inputs`).

    Raises:
        RuntimeError: more than `export.TOLERANCE` (nothing is published).
    """
    raw = probe_inputs(spec)
    normalised = np.asarray(serving.ServingFunctions(model, spec).normalise(raw))
    expected = model.predict(normalised, verbose=0)
    loaded = published.from_preset(folder).predict(raw, verbose=0)
    difference = float(np.max(np.abs(np.asarray(loaded, "float64") - expected)))
    if not difference <= TOLERANCE:
        raise RuntimeError(
            f"The published model predicts other values than the run's model (by {difference:.2e}, "
            f"more than {TOLERANCE}); nothing was published."
        )
    return difference


def build_metadata(model_for_raw, spec, source, results, context, difference):
    """metadata.json: keras-hub's keys, then what a user of the model needs."""
    from keras_dropact.training.run import versions

    config = results.config
    description = spec.describe()
    del description["top_k"]  # The serving signatures'.
    max_value = spec.normalisation.max_value
    return {
        "keras_version": keras.__version__,
        "parameter_count": model_for_raw.count_params(),
        "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S"),
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": context["name"],
        "license": context["license"],
        "model": config["model"],
        "activation": config["activation"],
        "p": config["p"],
        **description,
        "input_range": [0, max_value] if spec.is_image else None,
        "outputs": "logits",
        "trainable_parameters": results.trainable_parameters,
        "test_error": results.test_error,
        "test_loss": results.test_loss,
        "test_examples": source.record.splits["test"],
        "comparison": context["comparison"],
        "training": {key: results[key] for key in (
            "config", "recipe", "epochs_completed", "optimizer_steps", "train_seconds")},
        "training_versions": results.versions,
        "versions": versions(),
        "max_abs_difference_to_predict": difference,
    }

