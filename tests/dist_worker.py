"""One process of a multi-process test: `dropact train` as users run it.

Devices, TF_CONFIG and the KERAS_DISTRIBUTION_* variables must be set before
TensorFlow or JAX starts, so tests/test_distribution.py and
tests/test_jax_training.py launch this script, one process per worker:

    python tests/dist_worker.py cli OUT.json LOGICAL_CPUS -- DROPACT_ARGS...
        `dropact DROPACT_ARGS` through `keras_dropact.cli.main` (the
        project's own training path, callbacks and run directory), on
        LOGICAL_CPUS logical TensorFlow CPU devices (0: as TensorFlow
        starts). It records a fingerprint of every training example this
        process's input pipeline yields, and writes the exit code and the
        fingerprints to OUT.json.
    python tests/dist_worker.py masks OUT.json
        the Drop-Activation masks this worker's replica draws under
        MultiWorkerMirroredStrategy (TF_CONFIG), written to OUT.json.
"""

import json
import sys


def cli(out, logical_cpus, argv):
    import tensorflow as tf

    if logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus
        )
    from conftest import fingerprint
    from keras_dropact import cli as dropact_cli
    from keras_dropact import pipelines

    # Only the training data goes through `pipelines.stream_fn` (the test
    # split is read with `dataset_fn`): wrapping it fingerprints every
    # training batch this process's pipeline yields. Each stream (one per
    # `fit`) and each iteration of it is recorded on its own, in order:
    # Keras may read a batch or two through an iterator of its own before
    # training, and prefetching reads a few batches past the last step.
    streams = []
    stream_fn = pipelines.stream_fn

    def recording_stream_fn(*args, **kwargs):
        make = stream_fn(*args, **kwargs)

        def recorded(input_context):
            iterations = []
            streams.append({"start_step": kwargs.get("start_step", 0), "iterations": iterations})

            def remember(index, examples):
                if int(index) == 0:
                    iterations.append([])
                iterations[-1].extend(fingerprint(example) for example in examples.numpy())
                return 0

            def record(index, batch):
                examples, labels = batch
                done = tf.py_function(remember, [index, examples], tf.int32)
                with tf.control_dependencies([done]):
                    return tf.identity(examples), labels

            return make(input_context).enumerate().map(record)

        return recorded

    pipelines.stream_fn = recording_stream_fn
    code = dropact_cli.main(argv)
    with open(out, "w") as f:
        json.dump({"code": code, "streams": streams}, f)
    return code


def masks(out):
    import numpy as np
    import tensorflow as tf

    from keras_dropact import DropActivation

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        layer = DropActivation(p=0.5, seed=7)
    # Zero where the nonlinearity was kept, on a fixed input of negatives.
    mask = strategy.experimental_local_results(
        strategy.run(tf.function(lambda: layer(-tf.ones((32, 32)), training=True)))
    )[0].numpy() == 0
    with open(out, "w") as f:
        json.dump({"mask": np.asarray(mask, int).tolist()}, f)


if __name__ == "__main__":
    if sys.argv[1] == "masks":
        masks(sys.argv[2])
    else:
        assert sys.argv[1] == "cli" and sys.argv[4] == "--", sys.argv
        sys.exit(cli(sys.argv[2], int(sys.argv[3]), sys.argv[5:]))
