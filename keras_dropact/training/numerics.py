"""How a run computes: its dtype policy and TensorFlow's op determinism.

Both are process-wide settings a run turns on for its `fit` and turns back
off after it (`Run._start` enters them on the run's stack), chosen by its
configuration: `--mixed-precision` (float16 compute on GPUs, bfloat16
elsewhere; variables stay float32) and `--deterministic`.
"""

import contextlib

import keras


def mixed_precision_policy(has_gpu):
    """`--mixed-precision`: float16 on GPUs, bfloat16 elsewhere."""
    return "mixed_float16" if has_gpu else "mixed_bfloat16"


@contextlib.contextmanager
def dtype_policy(mixed_precision, has_gpu):
    """Keras' global dtype policy for the block: `mixed_precision_policy`
    with `mixed_precision`, else unchanged."""
    previous = keras.config.dtype_policy()
    if mixed_precision:
        keras.config.set_dtype_policy(mixed_precision_policy(has_gpu))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def op_determinism(enabled):
    """`--deterministic` for the block: TensorFlow's op determinism.

    It makes the TensorFlow ops deterministic: the input pipelines on both
    backends, and the training steps on TensorFlow.
    """
    if not enabled:
        yield
        return
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config  # is_/disable_: not public.

    was_enabled = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not was_enabled:
            tf_config.disable_op_determinism()
