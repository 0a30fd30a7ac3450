"""Shared test helpers. The Keras backend is chosen by KERAS_BACKEND before import."""

import os
import signal
import subprocess

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
