"""JAX-backend runs for tests/test_jax_training.py, one per fresh process.

KERAS_BACKEND=jax (and XLA_FLAGS, KERAS_DISTRIBUTION_*) must be set before
Keras and JAX start, so the test launches this script:

    python tests/jax_worker.py devices OUT.json RUN_ROOT
        one process with 2 CPU devices: the same short training with
        --strategy none and data-parallel, and Drop-Activation masks of a
        batch sharded over the two devices.
    python tests/jax_worker.py cli OUT.json -- DROPACT_TRAIN_ARGS...
        `dropact train ...` through `cli.main`, recording a fingerprint of
        every training example this process's input pipeline yields.
"""

import json
import os
import sys

QUICK = dict(model="simple-cnn", dataset="digits", epochs=1, steps_per_epoch=4, batch_size=40, seed=5)


def devices(out, run_root):
    import jax
    import keras
    import numpy as np

    from keras_dropact import DropActivation
    from keras_dropact.training.config import TrainConfig
    from keras_dropact.training.train import train

    assert keras.backend.backend() == "jax" and jax.device_count() == 2, jax.devices()
    report = {}
    for strategy in ("none", "data-parallel"):
        results = train(
            TrainConfig(**QUICK, strategy=strategy, light=True, run_dir=os.path.join(run_root, strategy)),
            verbose=0,
        )
        report[strategy] = {
            "loss": results["history"][0]["loss"],
            "test_loss": results["test_loss"],
            "test_error": results["test_error"],
            "distribution": results["distribution"],
        }

    odd = os.path.join(run_root, "odd-batch")
    try:
        train(TrainConfig(**dict(QUICK, batch_size=33), strategy="data-parallel", run_dir=odd), verbose=0)
    except ValueError as error:
        report["odd_batch_error"] = str(error)
    report["odd_batch_run_dir_exists"] = os.path.exists(odd)

    # Masks of a batch of negatives (0 where ReLU was kept, -1 where dropped),
    # drawn the way the train step draws them: a stateless call in one jitted
    # program, on the global batch sharded over the two devices, and on one device.
    data_parallel = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    with data_parallel.scope():
        layer = DropActivation(p=0.5, seed=7)
        layer.build((8, 64))
    step = jax.jit(lambda state, x: layer.stateless_call([], state, x, training=True)[0])
    state = [v.value for v in layer.non_trainable_variables]
    x = -np.ones((8, 64), "float32")
    sharding = data_parallel.get_data_layout(x.shape).backend_layout
    sharded = step(state, jax.device_put(x, sharding))
    one_device = step(
        [jax.device_put(np.asarray(s), jax.devices()[0]) for s in state],
        jax.device_put(x, jax.devices()[0]),
    )
    shards = sorted(sharded.addressable_shards, key=lambda shard: shard.index[0].start)
    report["mask_shards"] = [(np.asarray(shard.data) == 0).astype(int).tolist() for shard in shards]
    report["mask_shard_devices"] = [str(shard.device) for shard in shards]
    report["mask_one_device"] = (np.asarray(one_device) == 0).astype(int).tolist()
    with open(out, "w") as f:
        json.dump(report, f)


def cli(out, argv):
    import hashlib

    import tensorflow as tf

    from keras_dropact import cli as dropact_cli
    from keras_dropact.training.jax_runtime import JaxRuntime

    seen = []
    distribute = JaxRuntime.distribute

    def fingerprint(images):
        for image in images.numpy():
            seen.append(hashlib.sha1(image.tobytes()).hexdigest())
        return 0

    def recording_distribute(runtime, dataset_fn):
        def recorded_fn(input_context):
            dataset = dataset_fn(input_context)
            if recording_distribute.first:
                recording_distribute.first = False  # train.py builds the training pipeline first.

                def record(images, labels):
                    done = tf.py_function(fingerprint, [images], tf.int32)
                    with tf.control_dependencies([done]):
                        return tf.identity(images), labels

                return dataset.map(record)
            return dataset

        return distribute(runtime, recorded_fn)

    recording_distribute.first = True
    JaxRuntime.distribute = recording_distribute
    code = dropact_cli.main(argv)
    with open(out, "w") as f:
        json.dump({"code": code, "examples": seen}, f)
    return code


if __name__ == "__main__":
    if sys.argv[1] == "devices":
        devices(sys.argv[2], sys.argv[3])
    else:
        sys.exit(cli(sys.argv[2], sys.argv[4:]))
