"""Limits before allocation (issue 25; docs/reference/validation.md): image
sizes, image files and integer flags are checked before anything is read
or written, with one line naming the flag or file.

Each case was a probe finding: `--image-size 16x100000` grew the process to
23.7 GB until the OOM killer ended it, `--image-size 100000` gave 42- and
93-line tracebacks, both leaving a run directory; `predict` of a link to
/dev/zero filled the memory, of a FIFO waited for ever; `--batch-size
100000000000000000000` ended in "Can't convert Python sequence with
out-of-range integer to Tensor." with a run directory left. Nothing here
trains.
"""

import json
import os
import signal

import numpy as np
import pytest

from keras_dropact import cli
from keras_dropact import pipelines
from keras_dropact.training import run_dir as rd
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.evaluate import evaluate
from tests.conftest import tensorflow_only
from tests.test_validation import _one_line
from tests.test_validation import _split_folder
from tests.test_validation import _train_fails
from tests.test_validation import _write_png

pytestmark = tensorflow_only

MAX = "2147483647"


# Image sizes ---------------------------------------------------------------


@pytest.mark.parametrize("size, pixels", [
    ("100000", "10,000,000,000"), ("16x100000", "1,600,000"), ("513x512", "262,656"),
])
def test_image_sizes_past_the_maximum_are_refused_before_the_run_dir(size, pixels, tmp_path, capsys):
    data = _split_folder(tmp_path / "data")
    height, _, width = size.partition("x")
    _one_line(_train_fails(
        ["--model", "resnet-20", "--dataset", f"folder:{data}", "--image-size", size], tmp_path, capsys,
        f"--image-size {height}x{width or height} is {pixels} pixels, more than the 262,144 (512x512) "
        "images are read at for training", "--image-size 256.",
    ))


def test_the_maximum_image_size_is_one_place_for_flags_config_and_api(tmp_path):
    assert pipelines.MAX_IMAGE_PIXELS == 512 * 512
    assert TrainConfig(dataset="folder:x", image_size=[512, 512]).image_size == [512, 512]
    assert TrainConfig(dataset="folder:x", image_size=[1, 262144]).image_size == [1, 262144]
    with pytest.raises(ValueError, match=r"--image-size 1x262145 is 262,145 pixels"):
        TrainConfig(dataset="folder:x", image_size=[1, 262145])
    with pytest.raises(ValueError, match=r"--image-size 100000x100000 is 10,000,000,000 pixels"):
        TrainConfig(dataset="folder:x", image_size=100000)


def test_a_folder_whose_common_size_is_too_large_names_image_size(tmp_path, capsys):
    data = tmp_path / "data"
    for split in ("train", "test"):
        for name in ("ant", "bee"):
            _write_png(data / split / name / "0.png", shape=(1, 300000, 1))
    _one_line(_train_fails(
        ["--model", "resnet-20", "--dataset", f"folder:{data}", "--epochs", "1", "--steps-per-epoch", "1"],
        tmp_path, capsys,
        f"folder:{data}: its images' most common size, 1x300000, is 300,000 pixels, more than the "
        "262,144 (512x512) images are read at for training", "read them smaller with --image-size",
    ))


# Image files ---------------------------------------------------------------


def _make_bad_file(path, kind):
    """Puts a file of `kind` at `path`; returns the reason `limits` gives."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
        return "a FIFO (named pipe), not a regular file"
    if kind == "device":
        os.symlink("/dev/zero", path)
        return "a character device, not a regular file"
    if kind == "directory":
        path.mkdir()
        return "a directory, not a regular file"
    if kind == "oversized":
        with open(path, "wb") as f:  # Sparse: takes no disk space.
            f.truncate(pipelines.MAX_IMAGE_BYTES + 1)
        return ("67,108,865 bytes, more than the 67,108,864 (64 MiB) an image file may have "
                "(docs/reference/validation.md)")
    os.symlink(path.parent / "nowhere.png", path)  # Dangling.
    return "No such file or directory"


KINDS = ["fifo", "device", "directory", "oversized", "dangling"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_folder_scan_reads_regular_files_only(kind, tmp_path, capsys):
    if kind == "device" and not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    data = _split_folder(tmp_path / "data")
    bad = data / "train" / "ant" / "bad.png"
    reason = _make_bad_file(bad, kind)
    _one_line(_train_fails(
        ["--model", "resnet-20", "--dataset", f"folder:{data}"], tmp_path, capsys,
        f"folder:{data}: cannot read image {str(bad)!r}: {reason}. Replace or delete the file.",
    ))


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """A tiny .keras model of digits' 8x8x1 images."""
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return str(path)


class _Alarm(Exception):
    pass


def _alarm(signum, frame):
    raise _Alarm("predict waited on a file")


def test_predict_reads_regular_files_only_and_answers_the_others(digits_model, tmp_path, capsys):
    good = tmp_path / "good.png"
    _write_png(good, shape=(8, 8, 1))
    files, reasons = [str(good)], {}
    noise = tmp_path / "images" / "noise.png"  # Issue 25: "'utf-8' codec can't decode byte 0xd4".
    noise.parent.mkdir()
    noise.write_bytes(np.random.default_rng(1).bytes(5000))
    files.append(str(noise))
    reasons[str(noise)] = "not a decodable PNG, JPEG, GIF or BMP image (unknown file format)"
    for kind in KINDS:
        if kind == "device" and not os.path.exists("/dev/zero"):
            continue
        path = tmp_path / "images" / f"{kind}.png"
        reasons[str(path)] = _make_bad_file(path, kind)
        files.append(str(path))
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(120)  # A FIFO opened without O_NONBLOCK would wait for ever.
    try:
        code = cli.main(["predict", digits_model, "--dataset", "digits", "--json", *files])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert code == 1
    captured = capsys.readouterr()
    answers = json.loads(captured.out)
    assert [a["file"] for a in answers] == files
    assert len(answers[0]["predictions"]) == 5
    errors = [line for line in captured.err.splitlines() if line.startswith("dropact predict")]
    assert len(errors) == len(reasons)
    for answer, line in zip(answers[1:], errors):
        expected = f"cannot read {answer['file']!r}: {reasons[answer['file']]}"
        assert answer["error"] == expected
        assert line == f"dropact predict: error: {expected}"


def test_read_image_file_reads_a_regular_file_and_no_fifo(tmp_path):
    path = tmp_path / "a.png"
    data = np.random.default_rng(0).bytes(3 * 2**20 + 5)  # Several reads of 1 MiB.
    path.write_bytes(data)
    assert pipelines.read_image_file(str(path)) == data
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ValueError, match=r"^a FIFO \(named pipe\), not a regular file$"):
        pipelines.read_image_file(str(tmp_path / "pipe"))


# Integer flags -------------------------------------------------------------


def test_an_edited_config_json_gets_the_flags_checks(tmp_path, capsys):
    for case, (key, value, phrase) in enumerate((
        ("batch_size", 2**31, f"--batch-size must be in [1, {MAX}], got 2147483648."),
        # Past int64 no JSON record holds it (`run_files.has_kind`), before the flags' checks.
        ("batch_size", 10**20, "'batch_size' is 100000000000000000000"),
        ("image_size", [16, 100000], "--image-size 16x100000 is 1,600,000 pixels"),
    )):
        run = tmp_path / f"run-{case}"
        run.mkdir()
        config = TrainConfig(model="resnet-20", dataset="folder:data").to_dict()
        text = json.dumps({**config, key: value})
        (run / rd.CONFIG).write_text(text)
        assert cli.main(["train", "--resume", "--run-dir", str(run)]) == 2
        err = capsys.readouterr().err
        _one_line(err)
        assert err.startswith(f"dropact train: error: {str(run / rd.CONFIG)!r} is not a run "
                              f"configuration ({phrase}"), err
        assert os.listdir(run) == [rd.CONFIG] and (run / rd.CONFIG).read_text() == text


@pytest.mark.parametrize("argv, expected", [
    (["evaluate", "nowhere", "--batch-size", "0"], f"--batch-size must be in [1, {MAX}], got 0."),
    (["evaluate", "nowhere", "--batch-size", str(10**20)],
     f"--batch-size must be in [1, {MAX}], got {10**20}."),
    (["predict", "nowhere", "x.png", "--top-k", "0"], f"--top-k must be in [1, {MAX}], got 0."),
    (["predict", "nowhere", "x.png", "--top-k", str(2**31)], f"--top-k must be in [1, {MAX}], got {2**31}."),
])
def test_integer_flags_of_evaluate_and_predict(argv, expected, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert err.strip() == f"dropact {argv[0]}: error: {expected}"


def test_export_version_is_an_int64_as_tf_serving_reads_it(digits_model, tmp_path, capsys):
    root = tmp_path / "exports"
    argv = ["export", digits_model, "--dataset", "digits", "--root", str(root), "--version"]
    assert cli.main([*argv, str(2**63)]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert err.strip() == f"dropact export: error: --version must be in [1, {2**63 - 1}], got {2**63}."
    assert not root.exists()


@pytest.mark.parametrize("flags, expected", [
    (["fig2", "--seeds", "0"], "--seeds must be in [1, 1000], got 0."),
    (["fig2", "--seeds", "1001"], "--seeds must be in [1, 1000], got 1001."),
    (["fig2", "--first-seed", "-1"], f"--first-seed must be in [0, {MAX}], got -1."),
    (["fig2", "--first-seed", MAX, "--seeds", "2"],
     f"--first-seed {MAX} and --seeds 2 give seeds up to 2147483648; the largest seed is {MAX}."),
    (["fig2", "--epochs", str(10**20)], f"--epochs must be in [1, {MAX}], got {10**20}."),
    (["fig4", "--steps-per-epoch", "0"], f"--steps-per-epoch must be in [1, {MAX}], got 0."),
    (["fig3", "--steps", "-5"], f"--steps must be in [1, {MAX}], got -5."),
])
def test_integer_flags_of_repro_are_checked_before_out_is_made(flags, expected, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["repro", *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    _one_line(err)
    assert err.strip() == f"dropact repro: error: {expected}"
    assert not out.exists()


def test_the_python_api_gets_the_same_ranges():
    with pytest.raises(ValueError, match=r"^--batch-size must be in \[1, 2147483647\], got 10+\.$"):
        TrainConfig(batch_size=10**20)
    with pytest.raises(ValueError, match=r"^--backup-every must be an integer, got None\.$"):
        TrainConfig(backup_every=None)
    with pytest.raises(ValueError, match=r"^--batch-size must be in \[1, 2147483647\], got 0\.$"):
        evaluate("nowhere", batch_size=0)
    assert TrainConfig(epochs=2**31 - 1, batch_size=2**31 - 1, steps_per_epoch=2**31 - 1).epochs == 2**31 - 1

