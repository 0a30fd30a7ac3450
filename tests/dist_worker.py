"""One tiny training run under a strategy, for tests/test_distribution.py.

Run as a script (one process per worker, TF_CONFIG set by the test) or
imported for the single-device reference. It trains with `model.fit` and the
same callbacks as `keras_dropact.training.train` (backup, checkpoint, CSV
log), through `keras_dropact.training.runtime`, and writes a JSON report
plus the final weights to OUT.

    python tests/dist_worker.py STRATEGY RUN_DIR EPOCHS OUT [LOGICAL_CPUS]
"""

import json
import os
import sys

NUM_EXAMPLES = 64
GLOBAL_BATCH = 16
FEATURES = 6


def run(strategy_name, run_dir, epochs, out, p=1.0):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_dropact import DropActivation
    from keras_dropact.training import runtime

    here = runtime.make(strategy_name)
    strategy = here.strategy
    if here.is_chief:
        os.makedirs(run_dir, exist_ok=True)  # as Run.fit's RunDir.create
    rng = np.random.default_rng(0)
    x = rng.normal(size=(NUM_EXAMPLES, FEATURES)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int32")

    def dataset_fn(input_context):
        data = tf.data.Dataset.from_tensor_slices((x, y)).shard(
            input_context.num_input_pipelines, input_context.input_pipeline_id
        )
        return data.batch(input_context.get_per_replica_batch_size(GLOBAL_BATCH))

    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = keras.Sequential(
            [
                keras.Input((FEATURES,)),
                keras.layers.Dense(8),
                DropActivation(p=p, seed=1),
                keras.layers.Dense(2),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        masks = DropActivation(p=0.5, seed=7)
    here.prepare(model)

    train_data = here.distribute(dataset_fn)
    steps = here.steps(NUM_EXAMPLES, GLOBAL_BATCH)
    with here.writable_dir(run_dir) as write_dir:
        model.fit(
            train_data,
            epochs=epochs,
            steps_per_epoch=steps,
            shuffle=False,  # A fixed order: the tests compare runs.
            verbose=0,
            callbacks=[
                keras.callbacks.BackupAndRestore(
                    os.path.join(write_dir, "backup"), save_freq="epoch",
                    delete_checkpoint=False,
                ),
                keras.callbacks.ModelCheckpoint(os.path.join(write_dir, "checkpoint.keras")),
                keras.callbacks.CSVLogger(os.path.join(write_dir, "log.csv"), append=True),
            ],
        )
        with open(os.path.join(write_dir, "log.csv")) as f:
            losses = [float(line.split(",")[1]) for line in f.read().split()[1:]]

    # Drop-Activation masks of this replica on a fixed input of negatives
    # (zero where the nonlinearity was kept).
    mask = strategy.experimental_local_results(
        strategy.run(tf.function(lambda: masks(-tf.ones((32, 32)), training=True)))
    )[0].numpy() == 0
    np.savez(out + ".npz", *model.get_weights(), mask=mask)
    report = {
        "chief": here.is_chief,
        "replicas": strategy.num_replicas_in_sync,
        "write_dir": write_dir,
        "losses": losses,
    }
    with open(out + ".json", "w") as f:
        json.dump(report, f)
    return report


if __name__ == "__main__":
    if len(sys.argv) > 5:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * int(sys.argv[5])
        )
    run(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
