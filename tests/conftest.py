"""Shared test helpers. The Keras backend is chosen by KERAS_BACKEND before import."""

import json
import os
import signal
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

BACKEND = keras.backend.backend()

tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="TensorFlow-specific (tf.function, tf.distribute, SavedModel)"
)


def value_and_grad(fn, x):
    """Returns `(fn(x), d sum(fn(x)) / dx)` as NumPy arrays, from ONE call of fn.

    One call matters for random layers: the gradient must belong to the
    same mask as the returned value. `x` (a NumPy array) becomes a tensor on
    the backend's default device (`keras.ops.convert_to_tensor`), as Keras
    makes its own tensors: on a GPU machine that is the GPU, never assume
    the CPU.
    """
    x = keras.ops.convert_to_tensor(x)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
            total = tf.reduce_sum(tf.cast(y, "float32"))
        grad = tape.gradient(total, x)
    elif BACKEND == "jax":
        import jax
        import jax.numpy as jnp

        def total(x):
            y = fn(x)
            return jnp.sum(y.astype("float32")), y

        (_, y), grad = jax.value_and_grad(total, has_aux=True)(x)
    elif BACKEND == "torch":
        x.requires_grad_(True)
        y = fn(x)
        y.float().sum().backward()
        y, grad = y.detach(), x.grad
    else:
        raise NotImplementedError(BACKEND)
    return keras.ops.convert_to_numpy(y), keras.ops.convert_to_numpy(grad)


def launch(commands, timeout, cwd=None):
    """Runs `(argv, env)` processes together, each in its own session.

    Kills them all (process groups included) when one has not finished
    within `timeout` seconds, and fails the test unless each exits 0.
    Returns their combined stdout/stderr outputs.
    """
    processes = [
        subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for argv, env in commands
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
        pytest.fail(f"a process did not finish in {timeout} s")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    return outputs


def wait_until_stopped(process, limit=300):
    """Waits until `process` is stopped (state T in /proc/PID/stat), as the
    fault hook's `@SIGSTOP` leaves it; fails if it ends or takes `limit` s."""
    deadline = time.time() + limit
    while True:
        with open(f"/proc/{process.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        assert process.poll() is None, f"process ended with {process.returncode} before it stopped"
        assert time.time() < deadline, f"not stopped within {limit} s"
        time.sleep(0.05)


def free_port():
    """A loopback TCP port that was free a moment ago, for a test cluster."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_same_training(results, reference, tolerance=0.0):
    """Asserts that two runs' `results.json` record the same training.

    The same optimizer steps, epochs, per-epoch history (every logged value
    but the timings `epoch_seconds` and `compile_seconds`) and final test
    loss and error, equal
    exactly with `tolerance=0.0`, else to `tolerance` (absolute).
    """
    assert results["status"] == reference["status"] == "finished"
    assert results["optimizer_steps"] == reference["optimizer_steps"]
    assert results["epochs_completed"] == reference["epochs_completed"]
    assert [row["epoch"] for row in results["history"]] == [row["epoch"] for row in reference["history"]]
    for row, expected in zip(results["history"], reference["history"]):
        assert row.keys() == expected.keys()
        for key in expected.keys() - {"epoch", "epoch_seconds", "compile_seconds"}:
            assert row[key] == pytest.approx(expected[key], rel=0, abs=tolerance), (row["epoch"], key)
    for key in ("test_loss", "test_error"):
        assert results[key] == pytest.approx(reference[key], rel=0, abs=tolerance), key


def assert_same_weights(weights, reference, rtol=0.0, atol=0.0):
    """Asserts that two lists of weights hold the same arrays.

    As many arrays (a model that lost or gained a weight fails, which a bare
    `zip` would hide), each of the same shape and dtype, equal bit for bit
    with the default `rtol=atol=0.0`, else within those tolerances.
    """
    weights = [np.asarray(keras.ops.convert_to_numpy(w)) for w in weights]
    reference = [np.asarray(keras.ops.convert_to_numpy(w)) for w in reference]
    assert len(weights) == len(reference), f"{len(weights)} weights, expected {len(reference)}"
    for index, (actual, expected) in enumerate(zip(weights, reference)):
        assert (actual.shape, actual.dtype) == (expected.shape, expected.dtype), index
        if rtol == atol == 0.0:
            assert actual.tobytes() == expected.tobytes(), (
                f"weight {index} differs by up to {np.max(np.abs(actual - expected))}")
        else:
            np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=f"weight {index}")


def assert_same_run(run_dir, reference_dir):
    """Asserts that a run directory ended exactly as `reference_dir` did
    (`--deterministic` runs, one of them resumed): its results.json records
    the same training (`assert_same_training`, no tolerance) and its
    model.keras holds the same weights, bit for bit."""
    def results(run):
        with open(os.path.join(run, "results.json")) as f:
            return json.load(f)

    assert_same_training(results(run_dir), results(reference_dir))
    assert_same_weights(saved_weights(run_dir), saved_weights(reference_dir))


def saved_weights(run_dir):
    """The weights of the run's final `model.keras`, as NumPy arrays."""
    import keras_dropact  # noqa: F401 - registers the layers for loading.

    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), compile=False)
    return [np.asarray(w) for w in model.get_weights()]


def fingerprint(example):
    """The SHA-1 of one example's bytes, as tests/dist_worker.py records it."""
    import hashlib

    return hashlib.sha1(np.asarray(example).tobytes()).hexdigest()


def split_fingerprints(dataset, split="train"):
    """The fingerprints of every example of a split, as training normalises them, in split order."""
    from keras_dropact import pipelines

    size = pipelines.info(dataset)["splits"][split]
    examples, _ = next(iter(pipelines.load(dataset, split, size, shuffle=False)))
    return [fingerprint(example) for example in np.asarray(examples)]


def examples_read(stream, count):
    """The first `count` examples a `fit` read from a stream tests/dist_worker.py recorded.

    `fit` iterates the stream last; Keras may first read a batch or two
    through iterators of its own, which start the same way.
    """
    *peeks, training = stream["iterations"]
    assert len(training) >= count
    assert all(training[: len(seen)] == seen for seen in peeks)
    return training[:count]
