"""`--config FILE` and `--print-config` of `dropact train` and `compare` (issue 26).

A configuration file (JSON, e.g. a run's own config.json, or TOML) gives
TrainConfig fields; flags given override it; its keys and kinds are checked
by `config.read_config_file`, its values by `TrainConfig` as flags are.
`--print-config` prints the configuration a run would record and writes
nothing. Nothing here trains.
"""

import json
import os
import sys

import pytest

from keras_dropact import cli
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.config import read_config_file
from tests.conftest import tensorflow_only

pytestmark = tensorflow_only

TOML = """
model = "simple-cnn"
epochs = 3
batch_size = 16
image_size = [12, 12]
deterministic = true
"""


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _printed(argv, capsys):
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _one_line(argv, capsys, *expected):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dropact {argv[0]}: error: ") and len(err.strip().splitlines()) == 1, err
    for text in expected:
        assert text in err, (text, err)
    return err


def test_a_toml_file_with_flags_over_it_prints_and_writes_nothing(folder, capsys):
    (folder / "run.toml").write_text(TOML)
    printed = _printed(["train", "--config", "run.toml", "--epochs", "5", "--print-config"], capsys)
    assert printed["model"] == "simple-cnn" and printed["epochs"] == 5  # The flag wins.
    assert printed["batch_size"] == 16 and printed["image_size"] == [12, 12]
    assert printed["deterministic"] is True and printed["dataset"] == "digits"  # TrainConfig's default.
    assert printed["run_dir"].startswith(os.path.join("runs", "simple-cnn-digits-dropact-"))
    assert TrainConfig.from_json(printed).to_dict() == printed  # What a config.json holds.
    assert os.listdir(folder) == ["run.toml"]


def test_a_runs_own_config_json_starts_a_new_run(folder, capsys):
    TrainConfig(model="simple-cnn", epochs=2, seed=4, run_dir="runs/old", backend="tensorflow").save("old.json")
    printed = _printed(["train", "--config", "old.json", "--run-dir", "new", "--print-config"], capsys)
    with open("old.json") as f:
        assert printed == {**json.load(f), "run_dir": "new"}
    # --resume continues a run with its own configuration; another is refused.
    os.makedirs("runs/old")
    TrainConfig(model="simple-cnn", epochs=3, run_dir="runs/old", backend="tensorflow").save("runs/old/config.json")
    _one_line(["train", "--resume", "--run-dir", "runs/old", "--config", "old.json"], capsys,
              "these flags would change it: --epochs 2 (saved: 3), --seed 4 (saved: 0)")


@pytest.mark.parametrize("text, expected", [
    ('model = "simple-cnn"\nepoch = 2\n', "is no training configuration: unknown keys ['epoch'] (its keys: model, dataset,"),
    ('epochs = "two"\n', "is no training configuration: 'epochs' is 'two'"),
    ("image_size = 32\n", "'image_size' is 32"),
    ("epochs = 0\n", "--epochs must be in [1, 2147483647], got 0."),
    ('augment = "mixup"\n', "Unknown augmentation 'mixup'."),
    ("epochs = \n", "is not TOML (Invalid value"),
])
def test_a_bad_toml_file_is_one_line_naming_the_key(folder, capsys, text, expected):
    (folder / "bad.toml").write_text(text)
    _one_line(["train", "--config", "bad.toml"], capsys, expected)
    assert os.listdir(folder) == ["bad.toml"]


def test_files_that_are_no_configuration_are_one_line(folder, capsys):
    (folder / "list.json").write_text("[1, 2]")
    (folder / "nan.json").write_text('{"lr": NaN}')
    (folder / "big.json").write_text(" " * (2**20 + 1))
    os.mkdir("dir.toml")
    _one_line(["train", "--config", "list.json"], capsys, "a JSON object is needed, not list")
    _one_line(["train", "--config", "nan.json"], capsys, "is not JSON (the non-standard token NaN)")
    _one_line(["train", "--config", "big.json"], capsys, "is not a configuration file (a regular file of at most 1048576 bytes)")
    _one_line(["train", "--config", "dir.toml"], capsys, "is not a configuration file")
    _one_line(["train", "--config", "missing.toml"], capsys, "--config 'missing.toml': No such file or directory.")


def test_compare_takes_a_runs_config_json_but_its_per_run_keys(folder, capsys):
    TrainConfig(model="simple-cnn", activation="rrelu", p=0.5, epochs=2, run_dir="runs/r").save("r.json")
    record = _printed(["compare", "--config", "r.json", "--arm", "relu", "--arm", "dropact",
                       "--out", "cmp", "--print-config"], capsys)
    assert record["training"]["model"] == "simple-cnn" and record["training"]["epochs"] == 2
    assert not {"activation", "p", "run_dir"} & set(record["training"])
    assert record["recipe"]["epochs"] == 2 and not os.path.exists("cmp")
    (folder / "bad.toml").write_text("seeds = 3\n")  # compare's own flags are not TrainConfig's.
    _one_line(["compare", "--config", "bad.toml", "--arm", "relu", "--arm", "dropact", "--out", "cmp"],
              capsys, "unknown keys ['seeds']")


def test_toml_on_python_3_10_needs_tomli_from_the_train_extra(folder, capsys, monkeypatch):
    (folder / "run.toml").write_text(TOML)
    monkeypatch.setitem(sys.modules, "tomllib", None)  # As on Python 3.10: no tomllib,
    monkeypatch.setitem(sys.modules, "tomli", None)  # and the train extra not installed there.
    _one_line(["train", "--config", "run.toml"], capsys,
              "a TOML --config file on Python 3.10 needs 'tomli'", "pip install 'keras-dropact[train]'")
    monkeypatch.undo()
    assert read_config_file(str(folder / "run.toml"))["image_size"] == [12, 12]
