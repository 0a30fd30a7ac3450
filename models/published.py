"""A published model (`dropact publish`), loaded with one call.

    import keras_dropact

    model = keras_dropact.models.from_preset("my-model")        # or "hf://USER/NAME"
    metadata = keras_dropact.models.preset_metadata("my-model")
    logits = model.predict(images)      # the dataset's raw images, as it stores them
    names = [metadata["class_names"][i] for i in logits.argmax(-1)]

A published folder has keras-hub's preset layout, which is also Keras' own
unzipped model format (`keras.saving.load_model(FOLDER)` reads it too):

    config.json       the model, `keras.saving.serialize_keras_object`
                      (without compile and build configs, as keras-hub saves it)
    model.weights.h5  its weights (`model.save_weights`)
    metadata.json     keras-hub's keys (keras_version, parameter_count,
                      date_saved) and what a user needs: dataset, class
                      names, input shape and value range, normalisation,
                      p, test error, package versions (docs/guides/sharing.md)
    README.md         the model card, with Hugging Face's front matter

The model takes the dataset's raw images (e.g. uint8 0..255, or digits'
0..16): its first layer is the normalisation the run's test pipeline
applied (a `keras.layers.Rescaling`), then the trained network, which
returns logits. Its layers are Keras' and keras-dropact's, on any backend.

This module is part of the core (Keras and NumPy): it reads a folder; a
`hf://USER/NAME` repository is downloaded first with `huggingface_hub`
(the `hub` extra). Loading is safe mode Keras deserialisation: a config
that would run code (a `Lambda`) is refused.
"""

import json
import os
import re

import keras

from keras_dropact.errors import error_text
from keras_dropact import layers as _layers  # noqa: F401 - registers the layers for loading.

CONFIG = "config.json"
WEIGHTS = "model.weights.h5"
METADATA = "metadata.json"
MODEL_CARD = "README.md"
# The files of a published folder, in the order they are written.
FILES = (CONFIG, WEIGHTS, METADATA, MODEL_CARD)
HF_PREFIX = "hf://"
# Hugging Face's repository names: USER/NAME, letters, digits, `-`, `_`, `.`.
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")
# config.json and metadata.json are read whole: a larger one is no published model.
MAX_JSON_BYTES = 16 * 2**20


def hub_repo_id(path):
    """The repository `USER/NAME` of `hf://USER/NAME`, or None for any other path.

    Raises:
        ValueError: an `hf://` path that is not `hf://USER/NAME`.
    """
    if not isinstance(path, str) or not path.startswith(HF_PREFIX):
        return None
    repo_id = path[len(HF_PREFIX):]
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or repo_id.endswith(".git"):
        raise ValueError(
            f"{path!r} is not a Hugging Face model: write hf://USER/NAME (letters, digits, "
            "'-', '_' and '.', at most 96 characters each)."
        )
    return repo_id


def local_folder(path):
    """The folder of the published model at `path`: `path` itself, or the
    download of `hf://USER/NAME` (`huggingface_hub.snapshot_download`, its cache).

    Raises:
        MissingExtraError: `hf://` without huggingface_hub (the `hub` extra).
        FileNotFoundError: no published model there (one line naming it).
    """
    repo_id = hub_repo_id(path)
    if repo_id is not None:
        from keras_dropact import __version__
        from keras_dropact.extras import require

        require("hub", "huggingface_hub", feature="Loading an hf:// model")
        import huggingface_hub

        path = huggingface_hub.snapshot_download(
            repo_id=repo_id, library_name="keras-dropact", library_version=__version__)
    missing = [name for name in (CONFIG, WEIGHTS) if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise FileNotFoundError(
            f"{path!r} is no published model: it holds no {' or '.join(missing)} "
            "(a folder `dropact publish` wrote, or hf://USER/NAME)."
        )
    return path


def read_json(folder, name):
    """The JSON object of `folder/name`, bounded in size; one line if it is not one.

    Raises:
        ValueError: too large, not JSON, or not an object.
    """
    path = os.path.join(folder, name)
    size = os.path.getsize(path)
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{path!r} has {size} bytes, more than a published model's "
                         f"{name} ({MAX_JSON_BYTES}); it is not one.")
    try:
        with open(path, "rb") as f:
            values = json.loads(f.read())
    except ValueError as error:
        raise ValueError(f"{path!r} is not valid JSON ({error}).") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path!r} holds {type(values).__name__}, not a JSON object.")
    return values


def from_preset(path):
    """The Keras model published at `path` (a folder, or `hf://USER/NAME`).

    It takes the dataset's raw images and returns logits (see the module
    docstring); `model.predict` gives what it gave when it was published.

    Raises:
        FileNotFoundError: no published model at `path`.
        ValueError: a config.json that is not a model Keras can build.
        MissingExtraError: `hf://` without the `hub` extra.
    """
    folder = local_folder(path)
    config = read_json(folder, CONFIG)
    try:
        model = keras.saving.deserialize_keras_object(config)
        model.load_weights(os.path.join(folder, WEIGHTS))
    except Exception as error:  # noqa: BLE001 - any failure means unusable.
        raise ValueError(
            f"Cannot load the model published in {folder!r} ({error_text(error)})."
        ) from error
    return model


def preset_metadata(path):
    """The metadata.json of the model published at `path` (a dict)."""
    folder = local_folder(path)
    if not os.path.isfile(os.path.join(folder, METADATA)):
        raise FileNotFoundError(f"{folder!r} holds no {METADATA}.")
    return read_json(folder, METADATA)
