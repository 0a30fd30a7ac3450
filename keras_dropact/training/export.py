"""`export(source, format)`: write a trained model for serving.

Layouts (ROOT is `saved_models/` by default):

    saved_model  ROOT/NAME/VERSION/saved_model.pb ...     (TensorFlow Serving)
                 ROOT/NAME/VERSION/assets.extra/metadata.json
    onnx         ROOT/NAME-onnx/VERSION/model.onnx, metadata.json
    keras        ROOT/NAME-keras/VERSION/model.keras, metadata.json

The SavedModel carries the signatures of `serving`: `serving_default` takes
the dataset's raw uint8 images and normalises them in the graph,
`serve_image_bytes` takes encoded PNG/JPEG, `serve_normalized` takes
normalised float32 images; all return logits, probabilities, class ids and
names and the top k. The ONNX file has `serving_default`'s input and
outputs. `metadata.json` records the run's configuration, dataset,
normalisation, class names, test error and package versions.

The graph is the inference form (DropActivation as LeakyReLU, no random op).
Each export is written to a hidden temporary folder in the model's folder
(`.VERSION.tmp-HOST-PID`, which TF Serving and `next_version` ignore;
`run_files.atomic_folder`), checked numerically against `model.predict`
there (every SavedModel signature), and only then renamed into its version
folder: a killed or failed export leaves no version, and an existing
version is never overwritten. The next export of the same name deletes the
temporary folders of this machine's exports whose process is gone. NAME is
one folder name under ROOT; an export never writes outside ROOT.
"""

import contextlib
import errno
import os
import time

import numpy as np

from keras_dropact.extras import require
from keras_dropact.training import artifacts
from keras_dropact.training import faults
from keras_dropact.training import run_files
from keras_dropact.training import sources
from keras_dropact.training.config import check_int
from keras_dropact.training.results import read_results
from keras_dropact.training.stops import CannotWrite

FORMATS = ("saved_model", "onnx", "keras")
TOLERANCE = 1e-5
METADATA = "metadata.json"
ONNX_OPSET = 17


def check_name(name, what=None):
    """ValueError unless `name` is one path component (a folder name under
    --root); `what` the name is, for the message (default `--name NAME`)."""
    separators = [s for s in (os.sep, os.altsep) if s]
    if (not isinstance(name, str) or name in ("", ".", "..") or "\0" in name
            or any(s in name for s in separators)):
        raise ValueError(
            f"{what or f'--name {name!r}'} is not a model name: a name is one folder name "
            f"under --root (not empty, not '.' or '..', without "
            f"{' or '.join(map(repr, separators))})."
        )


def default_name(source):
    """The model name of `source` without --name: the real name of its run
    directory (or `.keras` file, without the extension), whatever the path
    says (`.`, `..`, a link), checked as --name is."""
    name = os.path.basename(os.path.realpath(source)).removesuffix(".keras")
    check_name(name, f"The name of {source!r}, {name!r},")
    return name


def check_root(root):
    """ValueError if `root`, or the nearest of its parents that exists, is not a folder."""
    existing = root
    while existing and not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if existing and not os.path.isdir(existing):
        where = "is a file" if existing == root else f"is under the file {existing!r}"
        raise ValueError(
            f"--root {root!r} {where}, not a folder: exports are written into "
            "folders under --root; choose a folder (default saved_models)."
        )


def next_version(model_root):
    """1 + the largest numeric version under `model_root` (1 if none)."""
    if not os.path.isdir(model_root):
        return 1
    versions = [int(d) for d in os.listdir(model_root) if d.isdigit()]
    return max(versions, default=0) + 1


def export_path(root, name, fmt, version):
    """ROOT/NAME[-FORMAT]/VERSION, checked: a model folder that is a link
    (an export would be written where it points) or a version that exists
    is refused."""
    folder = name if fmt == "saved_model" else f"{name}-{fmt}"
    model_root = os.path.join(root, folder)
    if os.path.islink(model_root) or (os.path.lexists(model_root) and not os.path.isdir(model_root)):
        raise ValueError(
            f"{model_root!r} is {'a link' if os.path.islink(model_root) else 'not a folder'}: "
            "an export is written only into a folder of its own under --root. Nothing was "
            "written; choose another --name or --root."
        )
    version = next_version(model_root) if version is None else version
    check_int("version", version)
    version_dir = os.path.join(model_root, str(version))
    if os.path.exists(version_dir):
        raise FileExistsError(
            f"{version_dir!r} already exists; refusing to overwrite an exported "
            f"version. Choose another --version (next free: {next_version(model_root)})."
        )
    return version_dir


def model_file(version_dir, fmt):
    """The file (or folder, for a SavedModel) a server loads."""
    return {"saved_model": version_dir, "onnx": os.path.join(version_dir, "model.onnx"),
            "keras": os.path.join(version_dir, "model.keras")}[fmt]


def metadata_path(version_dir, fmt):
    """`metadata.json` of an export: in `assets.extra/` for a SavedModel
    (TF Serving's folder for files it ships but does not load)."""
    if fmt == "saved_model":
        return os.path.join(version_dir, "assets.extra", METADATA)
    return os.path.join(version_dir, METADATA)


def export(source, fmt="saved_model", name=None, version=None, root="saved_models", dataset=None):
    """Exports the model behind `source` (a run directory or `.keras` file).

    `dataset` defaults to the run's (its recorded class names and input
    shape, `run_dataset`); a bare `.keras` file needs it. Returns a
    dict with the written `path`, the `signatures` and the largest absolute
    difference of the export's outputs to `model.predict` on a random probe
    batch of raw inputs.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown export format {fmt!r}. Valid formats: {', '.join(FORMATS)}.")
    require("train", "tensorflow", feature="export")
    _require_tensorflow_backend()
    if fmt == "onnx":
        _require_onnx()
    if name is not None:
        check_name(name)
    check_root(root)
    resolved = sources.resolve(source, dataset)
    results = read_results(source) if os.path.isdir(source) else None
    version_dir = export_path(root, name or default_name(source), fmt, version)

    from keras_dropact.training import serving

    model = artifacts.load_model(resolved.model_file)
    spec = serving.ServingSpec.for_record(resolved.record, model)
    functions = serving.ServingFunctions(model, spec)
    model_root = os.path.dirname(version_dir)
    with run_files.made_folders(model_root):
        run_files.remove_stale_folders(model_root)
        try:
            with run_files.atomic_folder(
                    version_dir, before_rename=lambda: faults.point("export_publish")) as temporary:
                with _full_disk_as_os_error():
                    _WRITERS[fmt](functions, model_file(temporary, fmt))
                difference = check(model, spec, model_file(temporary, fmt), fmt)
                metadata = build_metadata(resolved, fmt, spec, functions, difference, results)
                os.makedirs(os.path.dirname(metadata_path(temporary, fmt)), exist_ok=True)
                run_files.write_json(metadata_path(temporary, fmt), metadata)
        except CannotWrite as error:
            error.advise("nothing was published; free space, then export again")
            raise
    return {
        "path": model_file(version_dir, fmt),
        "format": fmt,
        "dataset": resolved.record.dataset,
        "signatures": metadata["signatures"],
        "max_abs_difference": difference,
    }


@contextlib.contextmanager
def _full_disk_as_os_error():
    """TensorFlow reports a full disk (or quota) while writing a SavedModel
    as ResourceExhaustedError ("... No space left on device [Op:SaveV2]"):
    raised here as the OSError it is, which `run_files.atomic_folder` turns
    into one line (`stops.CannotWrite`)."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.ResourceExhaustedError as error:
        for code in (errno.ENOSPC, errno.EDQUOT):
            if os.strerror(code) in error.message:
                raise OSError(code, os.strerror(code)) from error
        raise


def _require_tensorflow_backend():
    """The serving signatures are TensorFlow graphs around the model.

    A `.keras` file holds no backend: a model trained on JAX exports from
    the TensorFlow backend (`dropact export` switches to it by itself).
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "Exports with serving signatures are built on the TensorFlow backend, "
            f"not {keras.backend.backend()!r}: run `dropact export` (it switches "
            "backend by itself) or set KERAS_BACKEND=tensorflow; the .keras file "
            "of a JAX run loads there unchanged."
        )


def _write_saved_model(functions, path):
    """Keras' ExportArchive: it tracks the variables so that TF1-style
    loaders (`saved_model_cli run`, older TF Serving) restore them too."""
    import keras

    archive = keras.export.ExportArchive()
    archive.track(functions.model)
    signatures = functions.input_signatures()
    for signature_name, function in functions.functions().items():
        archive.add_endpoint(signature_name, function, input_signature=signatures[signature_name])
    archive.write_out(path, verbose=False)


def _write_onnx(functions, path):
    import tf2onnx

    from keras_dropact.training import serving

    signature = functions.input_signatures()[serving.RAW]
    tf2onnx.convert.from_function(
        functions.tf_functions()[serving.RAW], input_signature=signature,
        opset=ONNX_OPSET, output_path=path,
    )


def _write_keras(functions, path):
    functions.model.save(path)


_WRITERS = {"saved_model": _write_saved_model, "onnx": _write_onnx, "keras": _write_keras}


def probe_inputs(spec, batch=4, seed=0):
    """A random batch of raw serving inputs: uint8 in the dataset's stored
    range for images, standard normal float32 for signals."""
    rng = np.random.default_rng(seed)
    if not spec.is_image:
        return rng.standard_normal((batch, *spec.shape)).astype("float32")
    high = int(spec.normalisation.max_value or 255)
    return rng.integers(0, high + 1, (batch, *spec.shape)).astype("uint8")


def check(model, spec, path, fmt):
    """Largest |export - model.predict| over logits and probabilities, on a
    random batch of raw inputs; for a SavedModel through each of its
    signatures (raw, 8-bit PNG-encoded, normalised). Every signature must
    also answer an empty batch with empty outputs.

    Raises:
        RuntimeError: the difference exceeds TOLERANCE, or an empty batch
            fails (the export is not published).
    """
    import tensorflow as tf

    from keras_dropact.training import serving

    raw = probe_inputs(spec)
    normalised = np.asarray(serving.ServingFunctions(model, spec).normalise(raw))
    logits = np.asarray(model.predict(normalised, verbose=0), dtype="float64")
    expected = {"logits": logits, "probabilities": softmax(logits)}
    inputs = {serving.RAW: raw}
    if fmt == "saved_model":
        inputs[serving.NORMALIZED] = normalised
        if spec.is_image:
            files = serving.to_8bit(raw, spec.normalisation.max_value)
            inputs[serving.BYTES] = np.array([tf.io.encode_png(image).numpy() for image in files])
    loaded = tf.saved_model.load(path) if fmt == "saved_model" else None
    difference = 0.0
    for signature, x in inputs.items():
        outputs = run_exported(path, fmt, x, signature=signature, spec=spec, loaded=loaded)
        difference = max([difference, *(float(np.max(np.abs(outputs[k] - expected[k]))) for k in expected)])
        empty = run_exported(path, fmt, x[:0], signature=signature, spec=spec, loaded=loaded)
        if any(value.shape[:1] != (0,) for value in empty.values()):
            raise RuntimeError(f"The export in {path!r} answers an empty batch with non-empty outputs.")
    if difference > TOLERANCE:
        raise RuntimeError(
            f"The export in {path!r} differs from model.predict by {difference:.2e} "
            f"(more than {TOLERANCE}); it was not published."
        )
    return difference


def softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def run_exported(path, fmt, x, signature="serving_default", spec=None, loaded=None):
    """Runs an export on `x` the way a server loads it: a dict of NumPy outputs.

    `x` is the input of `signature` (for `serving_default`, the dataset's raw
    images). ONNX has only `serving_default`; a `.keras` export runs through
    the same signature functions, built from its `metadata.json` (or `spec`).
    `loaded`: the SavedModel at `path`, already loaded.
    """
    if fmt == "saved_model":
        import tensorflow as tf

        loaded = loaded or tf.saved_model.load(path)
        function = loaded.signatures[signature]
        (input_name,) = function.structured_input_signature[1]
        outputs = function(**{input_name: tf.constant(x)})
        return {key: value.numpy() for key, value in outputs.items()}
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        values = session.run(None, {session.get_inputs()[0].name: x})
        return dict(zip(names, values))
    from keras_dropact.training import serving

    if spec is None:
        spec = serving.ServingSpec.from_metadata(read_metadata(os.path.dirname(path), fmt))
    functions = serving.ServingFunctions(artifacts.load_model(path), spec)
    outputs = functions.tf_functions()[signature](x)
    return {key: value.numpy() for key, value in outputs.items()}


def read_metadata(version_dir, fmt):
    """An export's `metadata.json`, or a one-line RuntimeError naming it."""
    return run_files.read_json(metadata_path(version_dir, fmt), "an export's metadata",
                               "Export the run again.")


def build_metadata(source, fmt, spec, functions, difference, results):
    """What a server operator needs to know about an export of the
    `sources.Source` `source`; `results` is its run's `Results`, or None."""
    from keras_dropact.training.run import versions

    config = None if source.config is None else source.config.to_dict()
    return {
        "format": fmt,
        "source": os.path.abspath(source.path),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **spec.describe(),
        "signatures": describe_signatures(functions, fmt),
        "config": config if results is None else results.config,
        "test_error": getattr(results, "test_error", None),
        "test_loss": getattr(results, "test_loss", None),
        "training_versions": getattr(results, "versions", None),
        "versions": versions(),
        "max_abs_difference_to_predict": difference,
    }


def describe_signatures(functions, fmt):
    """{signature: {"inputs": {name: "dtype [shape]"}, "outputs": {...}}}."""
    from keras_dropact.training import serving

    if fmt == "keras":
        return {}
    output_types = functions.spec.output_types()
    described = {}
    for name, specs in functions.input_signatures().items():
        if fmt == "onnx" and name != serving.RAW:
            continue
        described[name] = {
            "inputs": {s.name: describe_tensor(s) for s in specs},
            "outputs": output_types,
        }
    return described


def describe_tensor(spec):
    """A TensorSpec as "uint8 [batch, 32, 32, 3]"."""
    dims = ", ".join("batch" if d is None else str(d) for d in spec.shape)
    return f"{spec.dtype.name} [{dims}]"


def _require_onnx():
    require("onnx", "onnxruntime", "tf2onnx", feature="ONNX export")
