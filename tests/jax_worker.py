"""A JAX-backend run for tests/test_jax_training.py, in a fresh process.

KERAS_BACKEND=jax and XLA_FLAGS must be set before Keras and JAX start, so
the test launches this script (its multi-process runs launch
tests/dist_worker.py):

    python tests/jax_worker.py devices OUT.json RUN_ROOT
        one process with 2 CPU devices: the same short training with
        --strategy none and data-parallel, and Drop-Activation masks of a
        batch sharded over the two devices.
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


if __name__ == "__main__":
    assert sys.argv[1] == "devices", sys.argv
    devices(sys.argv[2], sys.argv[3])
