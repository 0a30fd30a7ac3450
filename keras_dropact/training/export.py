"""`export(source, format)`: write a trained model for serving.

Layouts (ROOT is `saved_models/` by default):

    saved_model  ROOT/NAME/VERSION/saved_model.pb ...     (TensorFlow Serving)
    onnx         ROOT/NAME-onnx/VERSION/model.onnx
    keras        ROOT/NAME-keras/VERSION/model.keras

The exported graph is the inference form (DropActivation as LeakyReLU, no
random op). Each export is checked numerically against `model.predict`
before this function returns, and an existing version is never overwritten.
"""

import os

import numpy as np

from keras_dropact.extras import require
from keras_dropact.training import artifacts

FORMATS = ("saved_model", "onnx", "keras")
INPUT_NAME = "image"
TOLERANCE = 1e-5


def next_version(model_root):
    """1 + the largest numeric version under `model_root` (1 if none)."""
    if not os.path.isdir(model_root):
        return 1
    versions = [int(d) for d in os.listdir(model_root) if d.isdigit()]
    return max(versions, default=0) + 1


def export_path(root, name, fmt, version):
    folder = name if fmt == "saved_model" else f"{name}-{fmt}"
    model_root = os.path.join(root, folder)
    version = next_version(model_root) if version is None else int(version)
    if version < 1:
        raise ValueError(f"--version must be a positive integer, got {version}.")
    version_dir = os.path.join(model_root, str(version))
    if os.path.exists(version_dir):
        raise FileExistsError(
            f"{version_dir!r} already exists; refusing to overwrite an exported "
            f"version. Choose another --version (next free: {next_version(model_root)})."
        )
    return version_dir


def input_signature(model):
    import tensorflow as tf

    shape = tuple(model.inputs[0].shape)
    return [tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)]


def export(source, fmt="saved_model", name=None, version=None, root="saved_models"):
    """Exports the model behind `source` (a run directory or `.keras` file).

    Returns a dict with the written `path` and the largest absolute
    difference to `model.predict` on a random probe batch.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}. Valid formats: {', '.join(FORMATS)}.")
    if fmt == "onnx":
        _require_onnx()
    name = name or os.path.basename(os.path.normpath(source)).removesuffix(".keras")
    version_dir = export_path(root, name, fmt, version)
    model = artifacts.load_model(source)
    os.makedirs(version_dir)
    if fmt == "saved_model":
        path = version_dir
        model.export(path, format="tf_saved_model", input_signature=input_signature(model), verbose=False)
    elif fmt == "onnx":
        path = os.path.join(version_dir, "model.onnx")
        model.export(path, format="onnx", input_signature=input_signature(model), verbose=False)
    else:
        path = os.path.join(version_dir, "model.keras")
        model.save(path)
    probe = np.random.default_rng(0).uniform(0, 1, (4, *model.inputs[0].shape[1:])).astype("float32")
    difference = float(np.max(np.abs(run_exported(path, fmt, probe) - model.predict(probe, verbose=0))))
    if difference > TOLERANCE:
        raise RuntimeError(
            f"The export in {path!r} differs from model.predict by {difference:.2e} "
            f"(more than {TOLERANCE}); do not serve it."
        )
    return {"path": path, "format": fmt, "max_abs_difference": difference}


def run_exported(path, fmt, x):
    """Runs an exported model on `x` the way a server would load it."""
    if fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(path)
        outputs = loaded.signatures["serving_default"](**{INPUT_NAME: tf.constant(x)})
        return next(iter(outputs.values())).numpy()
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0]
    return np.asarray(artifacts.load_model(path).predict(x, verbose=0))


def _require_onnx():
    require("onnx", "onnxruntime", "tf2onnx", feature="ONNX export")
