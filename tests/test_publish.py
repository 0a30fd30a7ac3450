"""`dropact publish` and `keras_dropact.models.from_preset` (issue 26 item 4).

The tiny digits run of tests/conftest.py (`digits_run`) is published once
for the module, into an empty folder that exists; a fresh process loads it
with `import keras_dropact` alone. `hf://` goes to a stub of
`huggingface_hub` that keeps its repositories in a folder: nothing here
touches a network. A run of `dropact compare` is published in
tests/test_compare.py.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from keras_dropact import cli
from keras_dropact import models
from keras_dropact.models import published
from keras_dropact.training import faults
from keras_dropact.training import run_dir as rd
from tests.conftest import digits_test_images
from tests.conftest import tensorflow_only

NUM_TEST = 16


def _json(path):
    with open(path) as f:
        return json.load(f)


def _lines(err):
    return [line for line in err.splitlines() if line.startswith("dropact")]


@pytest.fixture(scope="module")
def out(digits_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("published") / "digits-dropact"
    folder.mkdir()  # Empty: published into.
    assert cli.main(["publish", digits_run, str(folder), "--license", "mit"]) == 0
    return str(folder)


@pytest.fixture(scope="module")
def test_batch():
    return digits_test_images(NUM_TEST)


def front_matter(text):
    import yaml

    assert text.startswith("---\n")
    matter, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(matter), body


# --- no training ------------------------------------------------------------


def test_hf_paths_are_user_and_name():
    assert published.hub_repo_id("hf://someone/digits-1.0") == "someone/digits-1.0"
    assert published.hub_repo_id("published/x") is None
    for bad in ("hf://x", "hf://a/b/c", "hf://a/../b", "hf://", "hf://-a/b"):
        with pytest.raises(ValueError, match="hf://USER/NAME"):
            published.hub_repo_id(bad)


def test_a_folder_without_a_model_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"holds no model.weights.h5 \(a folder `dropact publish`"):
        models.from_preset(str(tmp_path))
    (tmp_path / "model.weights.h5").write_text("")
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(ValueError, match="holds list, not a JSON object"):
        models.from_preset(str(tmp_path))


# --- a published run --------------------------------------------------------


@pytest.mark.slow
@tensorflow_only
def test_the_folder_is_keras_hubs_layout_with_the_runs_records(digits_run, out):
    assert sorted(os.listdir(out)) == sorted(published.FILES)
    results = _json(os.path.join(digits_run, rd.RESULTS))
    dataset = _json(os.path.join(digits_run, rd.DATASET))
    metadata = _json(os.path.join(out, published.METADATA))
    assert metadata == models.preset_metadata(out)
    expected = {
        "name": "digits-dropact", "license": "mit", "model": "simple-cnn", "activation": "dropact",
        "p": results["config"]["p"], "dataset": "digits", "class_names": dataset["class_names"],
        "input_shape": [8, 8, 1], "input_dtype": "uint8", "input_range": [0, 16.0],
        "normalisation_parameters": {"max_value": 16.0, "mean": None, "std": None},
        "outputs": "logits", "test_error": results["test_error"], "test_loss": results["test_loss"],
        "test_examples": dataset["splits"]["test"], "comparison": None,
        "trainable_parameters": results["trainable_parameters"],
        "training_versions": results["versions"], "max_abs_difference_to_predict": 0.0,
    }
    assert {key: metadata[key] for key in expected} == expected
    assert metadata["training"]["config"] == results["config"]
    assert metadata["training"]["optimizer_steps"] == results["optimizer_steps"] == 3
    # keras-hub's keys; its loader needs config.json's registered_name.
    assert metadata["keras_version"] == metadata["versions"]["keras"]
    assert metadata["parameter_count"] == models.from_preset(out).count_params()
    config = _json(os.path.join(out, published.CONFIG))
    assert config["registered_name"] == "Functional"
    assert not {"compile_config", "build_config"} & set(config)


@pytest.mark.slow
@tensorflow_only
def test_the_model_card_carries_the_runs_figures(digits_run, out):
    results = _json(os.path.join(digits_run, rd.RESULTS))
    with open(os.path.join(out, published.MODEL_CARD)) as f:
        matter, body = front_matter(f.read())
    error = results["test_error"]
    assert matter == {
        "library_name": "keras", "license": "mit",
        "tags": ["keras", "keras-dropact", "drop-activation", "simple-cnn", "digits", "dropact"],
        "pipeline_tag": "image-classification",
        "model-index": [{"name": "digits-dropact", "results": [{
            "task": {"type": "image-classification", "name": "Image Classification"},
            "dataset": {"name": "digits", "type": "digits", "split": "test"},
            "metrics": [
                {"type": "accuracy", "value": round(100 * (1 - error), 2), "name": "Test accuracy (%)"},
                {"type": "error", "value": round(100 * error, 2), "name": "Test error (%)"},
            ]}]}],
    }
    assert f"| test error | {100 * error:.2f}% on the 360 test examples of `digits` |" in body
    assert f"| test loss | {results['test_loss']:.4f} |" in body
    assert f'keras_dropact.models.from_preset("{out}")' in body
    assert "`images`: uint8 [batch, 8, 8, 1], the raw values 0..16 as `digits` stores them" in body
    assert "## Across seeds" not in body  # Not a run of `dropact compare`.


LOAD = textwrap.dedent("""
    import sys
    import numpy as np
    import keras_dropact

    folder, images, answer = sys.argv[1:]
    raw = np.load(images)
    np.save(answer, keras_dropact.models.from_preset(folder).predict(raw, verbose=0))
    import keras  # Keras' own unzipped format reads the same folder.
    assert np.array_equal(keras.saving.load_model(folder).predict(raw, verbose=0), np.load(answer))
""")


@pytest.mark.slow
@tensorflow_only
def test_a_fresh_process_predicts_what_the_run_predicts_exactly(digits_run, out, test_batch, tmp_path):
    from keras_dropact.training.artifacts import load_model

    raw, normalised = test_batch
    np.save(tmp_path / "raw.npy", raw)
    subprocess.run([sys.executable, "-c", LOAD, out, str(tmp_path / "raw.npy"), str(tmp_path / "y.npy")],
                   check=True, timeout=300, env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    expected = load_model(digits_run).predict(normalised, verbose=0)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


def _copy_run(run, tmp_path, edit):
    copy = str(tmp_path / "run")
    shutil.copytree(run, copy)
    edit(copy)
    return copy


def _unfinished(run):
    os.remove(os.path.join(run, rd.RESULTS))


def _diverged(run):
    path = os.path.join(run, rd.RESULTS)
    values = _json(path)
    for key in ("trainable_parameters",):
        values.pop(key)
    values.update(status="diverged", test_error=None, test_loss=None, diverged_at_step=2,
                  diverged_in_epoch=0, message="the loss is not finite")
    with open(path, "w") as f:
        json.dump(values, f)


@pytest.mark.slow
@tensorflow_only
@pytest.mark.parametrize("edit, message", [
    (_unfinished, "has not finished (no results.json): there is no final model to publish. "
                  "Finish it with `dropact train --resume --run-dir"),
    (_diverged, "diverged at optimizer step 2: it has no model to publish."),
    (lambda run: os.remove(os.path.join(run, rd.MODEL)), "keeps no model.keras (a light run"),
    (lambda run: os.remove(os.path.join(run, rd.CONFIG)), "is not a run directory of `dropact train`"),
])
def test_a_run_without_a_final_model_is_refused_in_one_line(digits_run, tmp_path, capsys, edit, message):
    run = _copy_run(digits_run, tmp_path, edit)
    assert cli.main(["publish", run, str(tmp_path / "out")]) == 2
    (line,) = _lines(capsys.readouterr().err)
    assert line.startswith(f"dropact publish: error: {run!r} ") and message in line, line
    assert sorted(os.listdir(tmp_path)) == ["run"]


@pytest.mark.slow
@tensorflow_only
@pytest.mark.parametrize("make, argv, message", [
    (lambda out: (out.mkdir(), (out / "notes.txt").write_text("mine")), (),
     "exists and is not empty; refusing to publish over it."),
    (lambda out: out.write_text("mine"), (), "exists and is not a folder;"),
    (lambda out: None, ("--license", "Apache 2"), "--license 'Apache 2' is not a licence identifier"),
])
def test_an_out_that_holds_something_or_a_bad_licence_is_refused(digits_run, tmp_path, capsys, make, argv, message):
    out = tmp_path / "out"
    make(out)
    before = sorted(os.listdir(tmp_path))
    assert cli.main(["publish", digits_run, str(out), *argv]) == 2
    (line,) = _lines(capsys.readouterr().err)
    assert message in line
    assert sorted(os.listdir(tmp_path)) == before


@pytest.mark.slow
@tensorflow_only
@pytest.mark.parametrize("fault, code, message", [
    ("publish@SIGTERM", 143, "dropact publish: interrupted by SIGTERM."),
    ("publish@ENOSPC", 74, "dropact publish: error: cannot write {out!r} (No space left on device); "
                           "nothing was published; free space, then publish again"),
])
def test_a_signal_or_a_full_disk_leaves_nothing(digits_run, tmp_path, capsys, monkeypatch, fault, code, message):
    """The folder complete under its temporary name, not yet renamed."""
    out = str(tmp_path / "new" / "model")
    monkeypatch.setenv(faults.ENV, fault)
    assert cli.main(["publish", digits_run, out]) == code
    assert _lines(capsys.readouterr().err) == [message.format(out=out)]
    assert os.listdir(tmp_path) == []  # No folder, no temporary folder, no parent left.


@pytest.mark.slow
@tensorflow_only
def test_a_folder_that_predicts_otherwise_is_not_published(digits_run, tmp_path, capsys, monkeypatch):
    """The check before the rename: the folder loaded back (here with its
    output bias shifted by 2e-3, as a wrong normalisation or a lost weight
    would shift it) must predict what the run's model predicts."""
    load = published.from_preset

    def shifted(folder):
        model = load(folder)
        bias = model.trainable_weights[-1]
        bias.assign(bias + 2e-3)
        return model

    monkeypatch.setattr(published, "from_preset", shifted)
    out = str(tmp_path / "new" / "model")
    assert cli.main(["publish", digits_run, out]) == 2
    (line,) = _lines(capsys.readouterr().err)
    assert line == ("dropact publish: error: The published model predicts other values than the "
                    "run's model (by 2.00e-03, more than 1e-05); nothing was published."), line
    assert os.listdir(tmp_path) == []


class StubHub:
    """`huggingface_hub`'s calls `dropact publish` and `from_preset` make,
    on repositories kept as folders under `root` (USER/NAME)."""

    def __init__(self, root):
        self.root, self.uploads = root, []
        self.module = types.SimpleNamespace(HfApi=lambda **kwargs: self,
                                            snapshot_download=self.snapshot_download)

    def repo_exists(self, repo_id):
        return os.path.isdir(os.path.join(self.root, repo_id))

    def list_repo_files(self, repo_id):
        return sorted(os.listdir(os.path.join(self.root, repo_id)))

    def create_repo(self, repo_id, private=False, exist_ok=False):
        os.makedirs(os.path.join(self.root, repo_id), exist_ok=exist_ok)
        open(os.path.join(self.root, repo_id, ".gitattributes"), "w").close()
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, folder_path, commit_message):
        self.uploads.append((repo_id, folder_path, commit_message))
        shutil.copytree(folder_path, os.path.join(self.root, repo_id), dirs_exist_ok=True)

    def snapshot_download(self, repo_id, library_name, library_version):
        return os.path.join(self.root, repo_id)


@pytest.mark.slow
@tensorflow_only
def test_hf_uploads_the_folder_in_one_commit_and_loads_back(digits_run, out, test_batch, tmp_path,
                                                            capsys, monkeypatch):
    hub = StubHub(str(tmp_path / "hub"))
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub.module)
    assert cli.main(["publish", digits_run, "hf://someone/digits"]) == 0
    ((repo_id, folder, message),) = hub.uploads
    assert repo_id == "someone/digits" and message == "dropact publish digits-run"
    assert not os.path.exists(folder)  # The temporary folder is gone.
    repository = os.path.join(hub.root, "someone", "digits")
    assert sorted(os.listdir(repository)) == sorted([".gitattributes", *published.FILES])
    with open(os.path.join(repository, published.MODEL_CARD)) as f:
        assert 'from_preset("hf://someone/digits")' in f.read()
    raw = test_batch[0]
    np.testing.assert_array_equal(models.from_preset("hf://someone/digits").predict(raw, verbose=0),
                                  models.from_preset(out).predict(raw, verbose=0))
    assert models.preset_metadata("hf://someone/digits")["name"] == "digits"
    capsys.readouterr()
    # A repository that holds files is refused; so are the Hub's failures, in one line.
    assert cli.main(["publish", digits_run, "hf://someone/digits"]) == 2
    (line,) = _lines(capsys.readouterr().err)
    assert line.startswith("dropact publish: error: hf://someone/digits already holds files (README.md, ")
    hub.repo_exists = lambda repo_id: (_ for _ in ()).throw(ConnectionError("offline\nmore"))
    assert cli.main(["publish", digits_run, "hf://someone/other"]) == 2
    assert _lines(capsys.readouterr().err) == [
        "dropact publish: error: The Hugging Face Hub refused or could not be reached for "
        "hf://someone/other (ConnectionError: offline). Nothing was published."]
    assert len(hub.uploads) == 1


@pytest.mark.slow
@tensorflow_only
def test_hf_without_the_hub_extra_is_one_line(digits_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    assert cli.main(["publish", digits_run, "hf://someone/digits"]) == 2
    (line,) = _lines(capsys.readouterr().err)
    assert line.startswith("dropact publish: error: Publishing to hf:// needs 'huggingface_hub'")
    assert line.endswith("Install it with: pip install 'keras-dropact[hub]'")
    with pytest.raises(ImportError, match=r"pip install 'keras-dropact\[hub\]'"):
        models.from_preset("hf://someone/digits")
