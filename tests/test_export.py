"""Serving-grade exports and `dropact predict` (issue 12; issue 15 item 8).

One tiny trained run on the offline `digits` data (8x8x1, raw values 0..16)
is exported once per format for the whole module.
"""

import base64
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from keras_dropact import cli
from keras_dropact import pipelines
from keras_dropact.training import export as export_lib
from keras_dropact.training import run_dataset
from keras_dropact.training import run_dir as rd
from keras_dropact.training import serving
from keras_dropact.training.artifacts import load_model
from tests.conftest import tensorflow_only

pytestmark = [tensorflow_only, pytest.mark.slow]

OUTPUTS = {"logits", "probabilities", "class_id", "class_name", "top_k_ids", "top_k_scores", "top_k_names"}
NUM_TEST = 16


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("runs") / "digits-run")
    argv = ["train", "--model", "simple-cnn", "--dataset", "digits", "--epochs", "1",
            "--steps-per-epoch", "3", "--batch-size", "32", "--run-dir", path, "--seed", "3"]
    assert cli.main(argv) == 0
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("saved_models"))


@pytest.fixture(scope="module")
def saved_model(run, root):
    return export_lib.export(run, "saved_model", name="digits", root=root)


@pytest.fixture(scope="module")
def loaded(saved_model):
    import tensorflow as tf

    return tf.saved_model.load(saved_model["path"])


@pytest.fixture(scope="module")
def test_batch():
    """The first NUM_TEST test images: raw uint8 (as stored) and as the pipeline normalises them."""
    spec = pipelines.registry.get("digits")
    raw = np.stack([image for image, _ in spec.loader(spec, "test").take(NUM_TEST).as_numpy_iterator()])
    normalised, _ = next(iter(pipelines.load("digits", "test", NUM_TEST)))
    return raw, np.asarray(normalised)


@pytest.fixture(scope="module")
def expected(run, test_batch):
    logits = load_model(run).predict(test_batch[1], verbose=0).astype("float64")
    return {"logits": logits, "probabilities": export_lib.softmax(logits), "class_id": logits.argmax(-1)}


def encode_png(image):
    import tensorflow as tf

    return tf.io.encode_png(image).numpy()


def as_8bit(raw):
    """Digits' stored 0..16 as the 0..255 pixels of an ordinary image file."""
    return np.round(raw.astype("float64") * 255 / 16).astype("uint8")


def call(loaded, signature, value):
    import tensorflow as tf

    function = loaded.signatures[signature]
    (name,) = function.structured_input_signature[1]
    return {k: v.numpy() for k, v in function(**{name: tf.constant(value)}).items()}


def assert_matches(outputs, expected):
    assert set(outputs) == OUTPUTS
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"], atol=1e-5)
    np.testing.assert_allclose(outputs["logits"], expected["logits"], atol=1e-5)
    np.testing.assert_array_equal(outputs["class_id"], expected["class_id"])
    assert [n.decode() for n in outputs["class_name"]] == [str(i) for i in expected["class_id"]]
    np.testing.assert_array_equal(outputs["top_k_ids"][:, 0], expected["class_id"])
    assert outputs["top_k_ids"].shape == outputs["top_k_scores"].shape == (len(expected["class_id"]), serving.TOP_K)
    np.testing.assert_allclose(outputs["top_k_scores"], np.sort(outputs["probabilities"], -1)[:, ::-1][:, :serving.TOP_K])


def test_signatures_match_predict_on_the_pipeline_batch(loaded, test_batch, expected):
    raw, normalised = test_batch
    assert raw.dtype == np.uint8 and raw.max() <= 16  # The stored digits values.
    assert_matches(call(loaded, "serving_default", raw), expected)
    # Image files are 8-bit: 0..255 maps back to the stored 0..16.
    files = as_8bit(raw)
    assert_matches(call(loaded, "serve_image_bytes", np.array([encode_png(image) for image in files])), expected)
    # RGBA files of gray pixels: alpha dropped, RGB to grayscale, same answer.
    rgba = np.concatenate([np.repeat(files, 3, axis=-1), np.full_like(files, 255)], axis=-1)
    assert_matches(call(loaded, "serve_image_bytes", np.array([encode_png(image) for image in rgba])), expected)
    assert_matches(call(loaded, "serve_normalized", normalised), expected)


def test_an_empty_batch_gives_empty_outputs(loaded):
    """Issue 20: a batch of 0 failed with "Incompatible shapes" (TensorFlow's
    batch norm) while ONNX answered it; every signature now answers [0, ...]."""
    shapes = {"logits": (0, 10), "probabilities": (0, 10), "class_id": (0,), "class_name": (0,),
              "top_k_ids": (0, 5), "top_k_scores": (0, 5), "top_k_names": (0, 5)}
    empty = {"serving_default": np.zeros((0, 8, 8, 1), "uint8"), "serve_normalized": np.zeros((0, 8, 8, 1), "float32"),
             "serve_image_bytes": np.array([], dtype=object).astype(bytes)}
    for signature, value in empty.items():
        outputs = call(loaded, signature, value)
        assert {k: v.shape for k, v in outputs.items()} == shapes, signature


def test_an_8bit_png_of_a_digit_gets_the_models_answer_on_the_stored_array(run, tmp_path, capsys):
    """Issue 20: an ordinary 8-bit PNG of an 8 was answered "4" with
    probability 1.0 (its 0..255 pixels were taken as digits' 0..16)."""
    spec = pipelines.registry.get("digits")
    stored, label = next((x, y) for x, y in spec.loader(spec, "test").as_numpy_iterator() if y == 8)
    png = tmp_path / "eight.png"
    png.write_bytes(encode_png(as_8bit(stored)))
    assert as_8bit(stored).max() > 200  # An ordinary black-and-white image.
    model = load_model(run)
    logits = model.predict((stored[None] / 16.0).astype("float32"), verbose=0).astype("float64")
    expected = export_lib.softmax(logits)[0]
    assert cli.main(["predict", run, str(png), "--json", "--top-k", "10"]) == 0
    (answer,) = json.loads(capsys.readouterr().out)
    probabilities = {row["class_id"]: row["probability"] for row in answer["predictions"]}
    np.testing.assert_allclose([probabilities[i] for i in range(10)], expected, atol=1e-5)
    assert answer["predictions"][0]["class_id"] == expected.argmax()


def test_export_reports_its_check_and_metadata(run, saved_model):
    assert saved_model["max_abs_difference"] <= 1e-5
    with open(os.path.join(saved_model["path"], "assets.extra", "metadata.json")) as f:
        metadata = json.load(f)
    with open(os.path.join(run, rd.RESULTS)) as f:
        results = json.load(f)
    assert metadata["dataset"] == "digits" and metadata["class_names"] == [str(i) for i in range(10)]
    assert metadata["test_error"] == results["test_error"] and metadata["config"]["model"] == "simple-cnn"
    assert metadata["normalisation_parameters"] == {"max_value": 16.0, "mean": None, "std": None}
    assert {"tensorflow", "keras", "keras_dropact"} <= set(metadata["versions"])
    assert metadata["signatures"]["serving_default"]["inputs"] == {"image": "uint8 [batch, 8, 8, 1]"}
    assert set(metadata["signatures"]) == {"serving_default", "serve_image_bytes", "serve_normalized"}


def test_no_signature_has_a_random_op(loaded):
    for name in ("serving_default", "serve_image_bytes", "serve_normalized"):
        graph = loaded.signatures[name].graph
        ops = {op.type for op in graph.get_operations()}
        for function in graph.as_graph_def().library.function:
            ops |= {node.op for node in function.node_def}
        assert not any("Random" in op for op in ops), (name, sorted(ops))
        assert "LeakyRelu" in ops, name


def saved_model_cli():
    return os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def test_saved_model_cli_shows_the_documented_signatures(saved_model):
    out = subprocess.run([saved_model_cli(), "show", "--dir", saved_model["path"], "--all"],
                         capture_output=True, text=True, check=True).stdout
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:(.*?)Method name", out, re.S))
    assert {"serving_default", "serve_image_bytes", "serve_normalized"} <= set(blocks)
    inputs = {
        "serving_default": ("image", "DT_UINT8", "(-1, 8, 8, 1)"),
        "serve_image_bytes": ("image_bytes", "DT_STRING", "(-1)"),
        "serve_normalized": ("image", "DT_FLOAT", "(-1, 8, 8, 1)"),
    }
    outputs = {"logits": ("DT_FLOAT", "(-1, 10)"), "probabilities": ("DT_FLOAT", "(-1, 10)"),
               "class_id": ("DT_INT64", "(-1)"), "class_name": ("DT_STRING", "(-1)"),
               "top_k_ids": ("DT_INT64", "(-1, 5)"), "top_k_scores": ("DT_FLOAT", "(-1, 5)"),
               "top_k_names": ("DT_STRING", "(-1, 5)")}
    for name, (input_name, dtype, shape) in inputs.items():
        tensors = re.findall(r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", blocks[name])
        assert ("inputs", input_name, dtype, shape) in tensors, (name, tensors)
        assert {(n, d, s) for kind, n, d, s in tensors if kind == "outputs"} == {(n, *ds) for n, ds in outputs.items()}


def test_saved_model_cli_runs_on_a_saved_npy(saved_model, test_batch, expected, tmp_path):
    np.save(tmp_path / "x.npy", test_batch[0])
    subprocess.run(
        [saved_model_cli(), "run", "--dir", saved_model["path"], "--tag_set", "serve",
         "--signature_def", "serving_default", "--inputs", f"image={tmp_path / 'x.npy'}",
         "--outdir", str(tmp_path / "out")],
        capture_output=True, text=True, check=True,
    )
    np.testing.assert_allclose(np.load(tmp_path / "out" / "probabilities.npy"), expected["probabilities"], atol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "class_id.npy"), expected["class_id"])


def rest_predict(loaded, body):
    """What TF Serving's REST `:predict` does with a row-format JSON body:
    instances -> one input tensor of the signature's dtype ({"b64": ...}
    decoded to bytes) -> outputs -> {"predictions": [one dict per instance]}."""
    import tensorflow as tf

    request = json.loads(body)
    function = loaded.signatures[request.get("signature_name", "serving_default")]
    ((name, spec),) = function.structured_input_signature[1].items()
    instances = [base64.b64decode(i["b64"]) if isinstance(i, dict) else i for i in request["instances"]]
    outputs = function(**{name: tf.constant(instances, dtype=spec.dtype)})
    columns = {k: v.numpy().tolist() for k, v in outputs.items()}
    decode = lambda v: v.decode() if isinstance(v, bytes) else [decode(x) for x in v] if isinstance(v, list) else v  # noqa: E731
    rows = [{k: decode(columns[k][i]) for k in columns} for i in range(len(instances))]
    return json.loads(json.dumps({"predictions": rows}))


def test_a_tf_serving_rest_body_gets_the_documented_fields(loaded, test_batch, expected):
    raw = test_batch[0][:3]
    bodies = [
        json.dumps({"signature_name": "serving_default", "instances": raw.tolist()}),
        json.dumps({"signature_name": "serve_image_bytes",
                    "instances": [{"b64": base64.b64encode(encode_png(image)).decode()} for image in as_8bit(raw)]}),
    ]
    for body in bodies:
        predictions = rest_predict(loaded, body)["predictions"]
        assert len(predictions) == 3
        for row, class_id, probabilities in zip(predictions, expected["class_id"], expected["probabilities"]):
            assert set(row) == OUTPUTS
            assert row["class_id"] == class_id and row["class_name"] == str(class_id)
            assert len(row["top_k_names"]) == serving.TOP_K and row["top_k_names"][0] == str(class_id)
            np.testing.assert_allclose(row["probabilities"], probabilities, atol=1e-5)


def test_bad_inputs_give_clear_errors(loaded, test_batch):
    import tensorflow as tf

    raw = test_batch[0][:2]
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor but is a float"):
        call(loaded, "serving_default", raw.astype("float32"))
    wrong_size = np.zeros((2, 9, 9, 1), "uint8")
    for signature, value in (("serving_default", wrong_size), ("serve_normalized", wrong_size.astype("float32"))):
        with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(
                f"{signature}: image must have shape [batch, 8, 8, 1] (the model input size); got [batch, 9, 9, 1]")):
            call(loaded, signature, value)
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape("got [batch, 8, 8]")):
        call(loaded, "serving_default", raw[..., 0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="is not a PNG, JPEG, GIF or BMP image"):
        call(loaded, "serve_image_bytes", np.array([encode_png(raw[0]), b"not an image"]))


def test_onnx_on_uint8_equals_the_saved_model(run, root, loaded, test_batch):
    result = export_lib.export(run, "onnx", name="digits", root=root)
    onnx_outputs = export_lib.run_exported(result["path"], "onnx", test_batch[0])
    reference = call(loaded, "serving_default", test_batch[0])
    assert set(onnx_outputs) == OUTPUTS
    assert np.max(np.abs(onnx_outputs["probabilities"] - reference["probabilities"])) <= 1e-5
    np.testing.assert_array_equal(onnx_outputs["class_id"], reference["class_id"])
    np.testing.assert_array_equal(onnx_outputs["top_k_names"].astype(str), reference["top_k_names"].astype(str))
    # An empty batch: empty outputs, as from the SavedModel.
    onnx_empty = export_lib.run_exported(result["path"], "onnx", test_batch[0][:0])
    saved_model_empty = call(loaded, "serving_default", test_batch[0][:0])
    assert {k: v.shape for k, v in onnx_empty.items()} == {k: v.shape for k, v in saved_model_empty.items()}
    assert onnx_empty["logits"].shape == (0, 10)


def test_keras_export_keeps_the_plain_model_and_writes_metadata(run, root, test_batch, expected):
    result = export_lib.export(run, "keras", name="digits", root=root)
    assert os.path.isfile(result["path"]) and result["path"].endswith("model.keras")
    assert export_lib.read_metadata(os.path.dirname(result["path"]), "keras")["class_names"][3] == "3"
    assert_matches(export_lib.run_exported(result["path"], "keras", test_batch[0]), expected)


def version_folders(model_root):
    return sorted(d for d in os.listdir(model_root) if d.isdigit()) if os.path.isdir(model_root) else []


def test_a_killed_export_leaves_no_version(run, tmp_path):
    """SIGKILL at the last instruction before the rename: no version folder."""
    from keras_dropact.training import faults

    root = str(tmp_path / "models")
    process = subprocess.run(
        [sys.executable, "-m", "keras_dropact.cli", "export", run, "--name", "m", "--root", root],
        capture_output=True, text=True, env={**os.environ, faults.ENV: "export_publish"})
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    model_root = os.path.join(root, "m")
    leftovers = os.listdir(model_root)
    assert version_folders(model_root) == [] and len(leftovers) == 1
    assert leftovers[0].startswith(f".1.tmp-{socket.gethostname()}-")
    assert export_lib.next_version(model_root) == 1
    # The next export of that name removes the killed one's folder (and
    # 0.1.0's `.VERSION.tmp-PID` of a dead process), never the folder of an
    # export whose process still runs, nor one of another machine.
    dead = subprocess.Popen([sys.executable, "-c", ""])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    kept = [f".1.tmp-{socket.gethostname()}-{live.pid}", f".1.tmp-other-host-{dead.pid}",
            f".2.tmp-{dead.pid}.txt", f".3.tmp-{dead.pid}"]
    try:
        for name in [*kept[:2], f".1.tmp-{dead.pid}"]:
            os.makedirs(os.path.join(model_root, name, "variables"))
        open(os.path.join(model_root, kept[2]), "w").close()  # A user's file, and a link:
        os.makedirs(tmp_path / "elsewhere" / "keep")  # never deleted, never followed.
        os.symlink(tmp_path / "elsewhere", os.path.join(model_root, kept[3]))
        export_lib.export(run, "saved_model", name="m", root=root)
        assert sorted(os.listdir(model_root)) == sorted([*kept, "1"])
        assert os.listdir(tmp_path / "elsewhere") == ["keep"]
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "/abs"])
def test_a_name_is_one_folder_under_the_root(run, tmp_path, capsys, name):
    """Issue 20: `--name ../x` wrote the export outside --root."""
    root = tmp_path / "root" / "models"
    assert cli.main(["export", run, "--name", name, "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dropact export: error: --name ") and repr(name) in err and "one folder name" in err
    assert len(err.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []


def test_the_default_name_is_the_runs_real_folder_name(run, tmp_path, capsys, monkeypatch):
    """Issue 25: `cd RUN/backup && dropact export .. --root X` wrote X/../1,
    outside --root; `export .` wrote ROOT/1, with no name folder."""
    root = tmp_path / "root" / "models"
    for where, source in ((os.path.join(run, rd.BACKUP), ".."), (run, ".")):
        monkeypatch.chdir(where)
        assert cli.main(["export", source, "--root", str(root), "--format", "keras"]) == 0
    assert os.listdir(tmp_path) == ["root"] and os.listdir(root) == ["digits-run-keras"]
    assert version_folders(root / "digits-run-keras") == ["1", "2"]
    # A model folder under --root that is a link is refused: the export
    # would be written where the link points.
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "linked-keras")
    capsys.readouterr()
    assert cli.main(["export", run, "--name", "linked", "--root", str(root), "--format", "keras"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dropact export: error: {str(root / 'linked-keras')!r} is a link: ")
    assert len(err.splitlines()) == 1 and os.listdir(tmp_path / "elsewhere") == []


def test_a_root_that_is_a_file_is_refused(run, tmp_path, capsys):
    """Issue 20: `export --root FILE` gave a NotADirectoryError traceback."""
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    for root in (file, file / "models"):
        assert cli.main(["export", run, "--root", str(root)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"dropact export: error: --root {str(root)!r} ") and "not a folder" in err
        assert len(err.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == ["notes.txt"] and file.read_text() == "mine"


def test_predict_names_a_savedmodel_with_truncated_variables(saved_model, tmp_path, capsys):
    """Issue 20: a truncated variables file gave an IndexError traceback."""
    import shutil

    version = tmp_path / "1"
    shutil.copytree(saved_model["path"], version)
    data = version / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    assert cli.main(["predict", str(version), "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dropact predict: error: Cannot load the SavedModel in {str(version)!r}: its files are damaged")
    assert len(err.strip().splitlines()) == 1


def test_a_failed_check_publishes_nothing(run, tmp_path, monkeypatch):
    def fail(*args):
        raise RuntimeError("differs from model.predict")

    monkeypatch.setattr(export_lib, "check", fail)
    with pytest.raises(RuntimeError, match="differs"):
        export_lib.export(run, "saved_model", name="m", root=str(tmp_path))
    assert os.listdir(tmp_path) == []


# A model of known answers: every class, every top-k position ------------------


def known_answers():
    """Ten raw digits images and the logits the `ten_classes` model gives them.

    Image i is black but for pixel i at digits' maximum (16, normalised to
    1.0); its logit for class c is -((c - i) mod 10), so its classes, most
    probable first, are i, i + 1, ..., i + 9 (mod 10): over the ten images
    the top-1 and every top-k position take every class.
    """
    raw = np.zeros((10, 64), "uint8")
    raw[np.arange(10), np.arange(10)] = 16
    classes = np.arange(10)
    logits = -((classes[None, :] - classes[:, None]) % 10).astype("float64")
    return raw.reshape(10, 8, 8, 1), logits


@pytest.fixture(scope="module")
def ten_classes(tmp_path_factory):
    """(bare `.keras` file, its SavedModel export) of a digits model whose
    answers are `known_answers()`: Flatten, then a Dense layer of set weights."""
    import keras

    folder = tmp_path_factory.mktemp("ten-classes")
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(10)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    kernel = np.zeros((64, 10), "float32")
    kernel[:10] = known_answers()[1]
    dense.set_weights([kernel, np.zeros(10, "float32")])
    model.save(folder / "ten.keras")
    exported = export_lib.export(str(folder / "ten.keras"), "saved_model", name="ten",
                                 root=str(folder / "models"), dataset="digits")
    return str(folder / "ten.keras"), exported


def test_every_class_and_top_k_position_of_a_model_of_known_answers(ten_classes):
    import tensorflow as tf

    raw, logits = known_answers()
    probabilities = export_lib.softmax(logits)
    order = (np.arange(10)[:, None] + np.arange(serving.TOP_K)[None, :]) % 10
    loaded = tf.saved_model.load(ten_classes[1]["path"])
    inputs = {"serving_default": raw, "serve_normalized": raw.astype("float32") / 16,
              "serve_image_bytes": np.array([encode_png(image) for image in as_8bit(raw)])}
    for signature, x in inputs.items():
        outputs = call(loaded, signature, x)
        np.testing.assert_allclose(outputs["logits"], logits, atol=1e-6, err_msg=signature)
        np.testing.assert_allclose(outputs["probabilities"], probabilities, atol=1e-6, err_msg=signature)
        np.testing.assert_array_equal(outputs["class_id"], np.arange(10), err_msg=signature)
        assert outputs["class_name"].astype(str).tolist() == [str(i) for i in range(10)], signature
        np.testing.assert_array_equal(outputs["top_k_ids"], order, err_msg=signature)
        assert outputs["top_k_names"].astype(str).tolist() == order.astype(str).tolist(), signature
        np.testing.assert_allclose(outputs["top_k_scores"], np.take_along_axis(probabilities, order, 1),
                                   atol=1e-6, err_msg=signature)


@pytest.mark.parametrize("signature", [serving.RAW, serving.BYTES, serving.NORMALIZED])
def test_an_export_whose_outputs_differ_through_one_signature_is_refused(ten_classes, tmp_path, monkeypatch,
                                                                          signature):
    # Logits off by 1e-3 through one signature only: `export`'s own check
    # (every signature against model.predict) refuses it, nothing is published.
    method = {serving.RAW: "serve_raw", serving.BYTES: "serve_image_bytes",
              serving.NORMALIZED: "serve_normalized"}[signature]
    serve = getattr(serving.ServingFunctions, method)

    def perturbed(self, x):
        outputs = serve(self, x)
        return {**outputs, "logits": outputs["logits"] + 1e-3}

    monkeypatch.setattr(serving.ServingFunctions, method, perturbed)
    with pytest.raises(RuntimeError, match=r"differs from model.predict by 1\.0\de-03 .* not published"):
        export_lib.export(ten_classes[0], "saved_model", name="ten", root=str(tmp_path), dataset="digits")
    assert os.listdir(tmp_path) == []


def test_a_bare_model_file_needs_its_dataset(run, tmp_path):
    with pytest.raises(ValueError, match="--dataset"):
        export_lib.export(os.path.join(run, rd.MODEL), "saved_model", root=str(tmp_path))
    with pytest.raises(ValueError, match="mnist1d"):
        export_lib.export(os.path.join(run, rd.MODEL), "saved_model", root=str(tmp_path), dataset="mnist1d")
    assert not os.path.exists(tmp_path / "model")


def test_signals_serve_float32_without_an_image_bytes_signature(tmp_path):
    """mnist1d is not an image: serving_default takes float32 signals as generated."""
    import keras

    inputs = keras.Input((40, 1))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    model.save(tmp_path / "signals.keras")
    result = export_lib.export(str(tmp_path / "signals.keras"), "saved_model", root=str(tmp_path), dataset="mnist1d")
    assert set(result["signatures"]) == {"serving_default", "serve_normalized"}
    assert result["signatures"]["serving_default"]["inputs"] == {"image": "float32 [batch, 40, 1]"}
    assert cli.main(["predict", str(tmp_path / "signals.keras"), "--dataset", "mnist1d", "x.png"]) == 2


@pytest.fixture(scope="module")
def image_files(tmp_path_factory, test_batch, expected):
    """Test images as files a user might have, and the classes the model gives them."""
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("images")
    raw = as_8bit(test_batch[0])  # Files hold 8-bit pixels.
    files = {
        "gray.png": encode_png(raw[0]),  # The model's own size and channels.
        "rgb.png": encode_png(np.repeat(raw[1], 3, axis=-1)),  # Converted to grayscale.
        "big.png": encode_png(np.repeat(np.repeat(raw[2], 2, axis=0), 2, axis=1)),  # 16x16, resized.
        "photo.jpg": tf.io.encode_jpeg(np.repeat(np.repeat(raw[3], 4, 0), 4, 1), quality=100).numpy(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    # Random bytes, not UTF-8 text (issue 25: "'utf-8' codec can't decode byte 0xd4").
    (folder / "random.png").write_bytes(b"\xd4\xff" + np.random.default_rng(5).bytes(3000))
    classes = {name: str(expected["class_id"][i]) for i, name in enumerate(files)}
    return folder, classes


def test_predict_prints_the_classes_of_image_files(run, saved_model, image_files, expected, capsys):
    folder, classes = image_files
    paths = [str(folder / n) for n in ("gray.png", "rgb.png", "big.png", "broken.png", "random.png")]
    model_folder = os.path.dirname(saved_model["path"])  # Its highest version is used.
    for source in (run, model_folder):
        assert cli.main(["predict", source, *paths, "--top-k", "3"]) == 1
        captured = capsys.readouterr()
        broken, random_bytes = captured.err.splitlines()
        assert "broken.png" in broken and "not a decodable PNG, JPEG, GIF or BMP image" in broken
        assert random_bytes == (f"dropact predict: error: cannot read {paths[-1]!r}: not a decodable "
                                "PNG, JPEG, GIF or BMP image (unknown file format)")
        answers = re.findall(r"^(\S+)\n  ([\d.]+)  (\S+) \(class", captured.out, re.M)
        assert [(os.path.basename(f), c) for f, _, c in answers] == [(n, classes[n]) for n in ("gray.png", "rgb.png", "big.png")]
        assert float(answers[0][1]) == pytest.approx(expected["probabilities"][0].max(), abs=1e-4)
    assert cli.main(["predict", run, str(folder / "photo.jpg"), str(folder / "missing.png"), "--json"]) == 1
    captured = capsys.readouterr()
    photo, missing = json.loads(captured.out)
    assert len(photo["predictions"]) == 5 and photo["predictions"][0]["probability"] >= photo["predictions"][1]["probability"]
    assert set(photo["predictions"][0]) == {"class_id", "class_name", "probability"}
    assert "No such file" in missing["error"] and "missing.png" in captured.err
    keras_file = os.path.join(run, rd.MODEL)
    assert cli.main(["predict", keras_file, str(folder / "gray.png")]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert cli.main(["predict", keras_file, "--dataset", "digits", str(folder / "gray.png")]) == 0
    assert f"  {classes['gray.png']} (class" in capsys.readouterr().out


def test_class_names_of_every_dataset(tmp_path):
    assert pipelines.class_names("cifar10")[:3] == ("airplane", "automobile", "bird")
    assert len(pipelines.class_names("cifar100")) == 100 and pipelines.class_names("cifar100")[-1] == "worm"
    emnist = pipelines.class_names("emnist-balanced")
    assert len(emnist) == 47 and emnist[9:11] == ("9", "A") and "".join(emnist[36:]) == "abdefghnqrt"
    assert pipelines.class_names("svhn") == pipelines.class_names("digits") == tuple("0123456789")
    for name in ("dog", "cat"):
        (tmp_path / name).mkdir()
        for i in range(5):  # Enough for the 80/20 split to leave test images.
            (tmp_path / name / f"{i}.png").write_bytes(encode_png(np.zeros((4, 4, 3), "uint8")))
    assert pipelines.class_names(f"folder:{tmp_path}") == ("cat", "dog")


def test_the_example_client_talks_to_a_rest_endpoint(loaded, image_files):
    """examples/tf_serving_client.py against a local stand-in for TF Serving's REST API."""
    import http.server
    import importlib.util
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API.
            assert self.path == "/v1/models/digits:predict"
            body = self.rfile.read(int(self.headers["Content-Length"]))
            answer = json.dumps(rest_predict(loaded, body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "tf_serving_client.py")
        spec = importlib.util.spec_from_file_location("tf_serving_client", path)
        client = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(client)
        folder, classes = image_files
        names = ["gray.png", "big.png"]
        url = f"http://127.0.0.1:{server.server_port}/v1/models/digits"
        predictions = client.predict(url, [str(folder / n) for n in names])
    finally:
        server.shutdown()
    assert [p["class_name"] for p in predictions] == [classes[n] for n in names]
    assert set(predictions[0]) == OUTPUTS


def test_predict_with_a_model_whose_answer_is_known(tmp_path, capsys):
    """An RGB `folder:` model that says "bright" when the mean of R+G+B exceeds
    1.5 (of 3): a grayscale file and files of other sizes are converted and
    resized in the graph, and the class names are the folder's."""
    import keras

    for name in ("bright", "dark"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(5):  # Enough for the 80/20 split to leave test images.
            (tmp_path / "data" / name / f"{i}.png").write_bytes(encode_png(np.zeros((4, 4, 3), "uint8")))
    inputs = keras.Input((4, 4, 3))
    dense = keras.layers.Dense(2)
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))
    dense.set_weights([np.array([[1.0, 0.0]] * 3, "float32"), np.array([-1.5, 0.0], "float32")])
    model.save(tmp_path / "m.keras")
    images = {"white-gray-6x5.png": np.full((6, 5, 1), 255, "uint8"), "black-rgb-10x10.png": np.zeros((10, 10, 3), "uint8"),
              "light-rgb-4x4.png": np.full((4, 4, 3), 204, "uint8")}
    for name, image in images.items():
        (tmp_path / name).write_bytes(encode_png(image))
    argv = ["predict", str(tmp_path / "m.keras"), "--dataset", f"folder:{tmp_path / 'data'}", "--json", "--top-k", "1"]
    assert cli.main([*argv, *(str(tmp_path / n) for n in images)]) == 0
    answers = [a["predictions"][0] for a in json.loads(capsys.readouterr().out)]
    assert [a["class_name"] for a in answers] == ["bright", "dark", "bright"]
    # Logits 3 - 1.5 = 1.5 vs 0 (white), 0 - 1.5 vs 0 (black), 2.4 - 1.5 = 0.9 vs 0 (204/255 = 0.8).
    expected = [1 / (1 + np.exp(-1.5)), 1 / (1 + np.exp(-1.5)), 1 / (1 + np.exp(-0.9))]
    np.testing.assert_allclose([a["probability"] for a in answers], expected, atol=1e-5)


# Folder runs keep their classes and image size (issue 20) -------------------


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A `folder:` run on dark "a" and bright "b" 12x10 images, read at
    --image-size 8 (simple-cnn needs 8x8); returns (data folder, run)."""
    root = tmp_path_factory.mktemp("folder-run")
    data = root / "data"
    for name, value in (("a", 30), ("b", 220)):
        (data / name).mkdir(parents=True)
        for i in range(10):
            (data / name / f"{i}.png").write_bytes(encode_png(np.full((12, 10, 3), value + i, "uint8")))
    run = str(root / "run")
    argv = ["train", "--model", "simple-cnn", "--dataset", f"folder:{data}", "--image-size", "8",
            "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--run-dir", run]
    assert cli.main(argv) == 0
    return data, run


class renamed:
    """Renames `folder` for a `with` block, then puts it back."""

    def __init__(self, folder, name):
        self.folder, self.other = folder, folder.parent / name

    def __enter__(self):
        self.folder.rename(self.other)

    def __exit__(self, *exc):
        self.other.rename(self.folder)


def test_a_folder_run_records_its_classes_and_image_size(folder_run):
    data, run = folder_run
    with open(os.path.join(run, "dataset.json")) as f:
        record = json.load(f)
    assert record == {"dataset": f"folder:{data}", "shape": [8, 8, 3], "class_names": ["a", "b"],
                      "splits": {"train": 16, "test": 4}, "split_digests": record["split_digests"]}
    assert sorted(record["split_digests"]) == ["test", "train"] and len(record["split_digests"]["test"]) == 64
    with open(os.path.join(run, rd.CONFIG)) as f:
        assert json.load(f)["image_size"] == [8, 8]
    assert load_model(run).inputs[0].shape[1:] == (8, 8, 3)


def test_export_and_predict_keep_the_runs_classes_when_the_folder_changes(folder_run, tmp_path, capsys):
    """Issue 20: with class folder a renamed to zz, the export called class 0 "b"."""
    data, run = folder_run
    (tmp_path / "bright.png").write_bytes(encode_png(np.full((5, 5, 3), 230, "uint8")))
    expected = export_lib.run_exported(os.path.join(run, rd.MODEL), "keras", np.full((1, 8, 8, 3), 230, "uint8"),
                                       spec=serving.ServingSpec.for_record(
                                           run_dataset.DatasetRecord.of(f"folder:{data}", 8), load_model(run)))
    with renamed(data / "a", "zz"):
        result = export_lib.export(run, "saved_model", name="f", root=str(tmp_path / "models"))
        metadata = export_lib.read_metadata(result["path"], "saved_model")
        assert metadata["class_names"] == ["a", "b"] and metadata["input_shape"] == [8, 8, 3]
    with renamed(data, "gone"):  # The run's own record: the folder is not needed.
        for source in (run, result["path"]):
            assert cli.main(["predict", source, str(tmp_path / "bright.png"), "--json", "--top-k", "2"]) == 0
            (answer,) = json.loads(capsys.readouterr().out)
            names = [row["class_name"] for row in answer["predictions"]]
            assert sorted(names) == ["a", "b"]
            assert names[0] == expected["class_name"][0].decode()


@pytest.mark.parametrize("change", ["rename", "add_class", "remove_image", "replace_image"])
def test_evaluate_refuses_a_folder_that_no_longer_matches_the_run(folder_run, capsys, change):
    data, run = folder_run
    assert cli.main(["evaluate", run]) == 0
    with open(os.path.join(run, rd.RESULTS)) as f:
        assert json.loads(capsys.readouterr().out)["test_error"] == pytest.approx(json.load(f)["test_error"])
    moved = data.parent / "moved"
    if change == "rename":
        (data / "a").rename(data / "zz")
        expected = "classes ('a', 'b') -> ('b', 'zz')"
    elif change == "add_class":
        (data / "c").mkdir()
        (data / "c" / "0.png").write_bytes(encode_png(np.zeros((12, 10, 3), "uint8")))
        expected = "classes ('a', 'b') -> ('a', 'b', 'c')"
    elif change == "remove_image":
        moved.mkdir()
        (data / "b" / "9.png").rename(moved / "9.png")
        expected = "test images 4 -> 3"  # 19 images: 16 train, 3 test.
    else:
        (data / "b" / "9.png").rename(data / "b" / "90.png")
        expected = "other train files (as many, other names)"
    try:
        assert cli.main(["evaluate", run]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"dropact evaluate: error: folder:{data} no longer matches run {run!r} (dataset.json): ")
        assert expected in err and len(err.strip().splitlines()) == 1
    finally:
        if change == "rename":
            (data / "zz").rename(data / "a")
        elif change == "add_class":
            import shutil

            shutil.rmtree(data / "c")
        elif change == "remove_image":
            (moved / "9.png").rename(data / "b" / "9.png")
            moved.rmdir()
        else:
            (data / "b" / "90.png").rename(data / "b" / "9.png")


def test_resume_refuses_a_folder_that_no_longer_matches_the_run(folder_run, tmp_path, capsys):
    """A run killed after its first step, resumed with class folder a renamed."""
    from keras_dropact.training import faults

    data, _ = folder_run
    run = str(tmp_path / "killed")
    argv = ["train", "--model", "simple-cnn", "--dataset", f"folder:{data}", "--image-size", "8",
            "--epochs", "1", "--steps-per-epoch", "4", "--batch-size", "8", "--backup-every", "1", "--run-dir", run]
    env = {**os.environ, faults.ENV: "step:2", "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.run([sys.executable, "-m", "keras_dropact.cli", *argv], env=env, capture_output=True, text=True)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]

    def snapshot():
        return {os.path.relpath(os.path.join(d, n), run): open(os.path.join(d, n), "rb").read()
                for d, _, names in os.walk(run) for n in names}

    before = snapshot()
    with renamed(data / "a", "zz"):
        assert cli.main(["train", "--resume", "--run-dir", run]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dropact train: error: folder:{data} no longer matches run {run!r}")
    assert "classes ('a', 'b') -> ('b', 'zz')" in err and len(err.strip().splitlines()) == 1
    assert snapshot() == before


# Signals and full disks in every command (issue 25) -------------------------

STOPPED = """
import os, signal, sys, time
from keras_dropact import cli
from keras_dropact.training import evaluate, faults, predict

def stopped(*args, **kwargs):  # SIGTERM while the command works.
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)
    raise AssertionError("SIGTERM did not stop the command")

evaluate.evaluate = predict.predict = stopped
run, root = sys.argv[1:]
codes = [cli.main(["evaluate", run]), cli.main(["predict", run, "x.png"])]
os.environ[faults.ENV] = "export_publish@SIGTERM"  # The version is complete, not renamed.
codes.append(cli.main(["export", run, "--root", root, "--format", "keras"]))
print(codes)
"""


def test_sigterm_stops_evaluate_predict_and_export_in_one_line(run, tmp_path):
    """Issue 25: killed with no message (SIGTERM's default), the export's
    temporary folder left until the next export."""
    root = str(tmp_path / "models")
    process = subprocess.run([sys.executable, "-c", STOPPED, run, root], capture_output=True,
                             text=True, timeout=300)
    assert process.returncode == 0 and process.stdout.split("\n")[-2] == "[143, 143, 143]", (
        process.stderr[-3000:])
    lines = [line for line in process.stderr.splitlines() if line.startswith("dropact")]
    assert lines == [f"dropact {command}: interrupted by SIGTERM."
                     for command in ("evaluate", "predict", "export")], process.stderr[-3000:]
    assert not os.path.exists(root)  # No temporary folder, no empty folder.


def test_a_full_disk_during_an_export_is_one_line(run, tmp_path, capsys, monkeypatch):
    from keras_dropact.training import faults

    root = tmp_path / "models"
    monkeypatch.setenv(faults.ENV, "export_publish@ENOSPC")
    assert cli.main(["export", run, "--root", str(root), "--format", "keras"]) == 74
    err = capsys.readouterr().err
    assert err == (f"dropact export: error: cannot write {str(root / 'digits-run-keras' / '1')!r} "
                   "(No space left on device); nothing was published; free space, then export again\n")
    assert not os.path.exists(root)


def _can_mount_a_tmpfs():
    from tests.test_run_lifecycle import _can_mount_a_tmpfs

    return _can_mount_a_tmpfs()


@pytest.mark.skipif(not _can_mount_a_tmpfs(), reason="no user mount namespace for a tmpfs")
def test_a_real_full_disk_during_an_export(run, tmp_path):
    """Issue 25: an OSError traceback (a SavedModel: a 51-line
    ResourceExhaustedError one, `test_tensorflows_full_disk_is_an_os_error`)."""
    (tmp_path / "mnt").mkdir()
    script = (f"mount -t tmpfs -o size=100k tmpfs {tmp_path}/mnt && {sys.executable} -m "
              f"keras_dropact.cli export {run} --root {tmp_path}/mnt/models --format keras "
              f"2> {tmp_path}/err; echo $? > {tmp_path}/code; ls -A {tmp_path}/mnt > {tmp_path}/left")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(["unshare", "-Urm", "sh", "-c", script], env=env, timeout=300, check=True)
    err = (tmp_path / "err").read_text()
    assert (tmp_path / "code").read_text().strip() == "74", err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("dropact")]
    assert lines == [f"dropact export: error: cannot write '{tmp_path}/mnt/models/digits-run-keras/1' "
                     "(No space left on device); nothing was published; free space, then export "
                     "again"] and "Traceback" not in err, err[-3000:]
    assert (tmp_path / "left").read_text() == ""


def test_tensorflows_full_disk_is_an_os_error():
    # What TensorFlow raised writing a SavedModel to a full 100 kB tmpfs.
    import tensorflow as tf

    message = "/x/variables/variables_temp/part-0; No space left on device [Op:SaveV2]"
    with pytest.raises(OSError) as error, export_lib._full_disk_as_os_error():
        raise tf.errors.ResourceExhaustedError(None, None, message)
    assert error.value.errno == errno.ENOSPC
    with pytest.raises(tf.errors.ResourceExhaustedError), export_lib._full_disk_as_os_error():
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
