"""Training throughput (images/s) with 1 and 2 replicas, on devices or workers.

    python benchmarks/scaling.py [--steps 30] [--batch-size 64]

Four configurations of the same small Drop-Activation CNN on random
32x32x3 images, each in fresh processes (logical devices and TF_CONFIG must be
set before TensorFlow starts): the default strategy on one device,
MirroredStrategy over 2 logical CPU devices, and MultiWorkerMirroredStrategy
with 1 and 2 local worker processes on loopback ports. The global batch is the
same everywhere; the first (tracing) epoch is not timed.

On a CPU-only host the logical devices and local workers share the same
cores, so this measures distribution overhead, not speed-up; run it on a
multi-GPU host or a cluster for real scaling numbers.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from keras_dropact.training.tf_runtime import local_tf_configs

CHILD = r"""
import json, os, sys, time
import numpy as np
devices, strategy_name, steps, batch = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
import tensorflow as tf
if devices > 1:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * devices)
import keras
from keras_dropact import DropActivation
from keras_dropact.training import strategies
here = strategies.make(strategy_name)
strategy = here.strategy
x = np.random.default_rng(0).normal(size=(batch * steps, 32, 32, 3)).astype("float32")
y = np.random.default_rng(1).integers(0, 10, size=batch * steps).astype("int32")
def dataset_fn(ctx):
    data = tf.data.Dataset.from_tensor_slices((x, y)).shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
    return data.batch(ctx.get_per_replica_batch_size(batch)).cache()
with strategy.scope():
    model = keras.Sequential([keras.Input((32, 32, 3))] + [
        layer for width in (32, 64) for layer in (
            keras.layers.Conv2D(width, 3, padding="same"), DropActivation(seed=0),
            keras.layers.MaxPooling2D())] + [keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
here.prepare(model)
data = here.distribute(dataset_fn)
epoch_steps = here.steps(batch * steps, batch)
model.fit(data, epochs=1, steps_per_epoch=epoch_steps, verbose=0)  # tracing
start = time.perf_counter()
model.fit(data, epochs=2, steps_per_epoch=epoch_steps, verbose=0)
seconds = time.perf_counter() - start
if here.is_chief:
    print("RESULT", json.dumps({"replicas": strategy.num_replicas_in_sync,
                                "images_per_second": 2 * steps * batch / seconds}))
"""


def launch(devices, strategy, workers, args):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    env.pop("TF_CONFIG", None)
    tf_configs = local_tf_configs(workers)
    processes = []
    for index in range(workers):
        if strategy == "multiworker":
            env = dict(env, TF_CONFIG=tf_configs[index])
        argv = [sys.executable, "-c", CHILD, str(devices), strategy, str(args.steps), str(args.batch_size)]
        processes.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True, start_new_session=True))
    try:
        outputs = [process.communicate(timeout=args.timeout)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    for output in outputs:
        for line in output.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"no result from {strategy} with {workers} worker(s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="steps per timed epoch")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per configuration")
    args = parser.parse_args()
    rows = []
    for label, devices, strategy, workers in (
        ("1 device (default strategy)", 1, "none", 1),
        ("2 logical CPU devices (MirroredStrategy)", 2, "mirrored", 1),
        ("1 local worker (MultiWorkerMirroredStrategy)", 1, "multiworker", 1),
        ("2 local workers (MultiWorkerMirroredStrategy)", 1, "multiworker", 2),
    ):
        start = time.perf_counter()
        result = launch(devices, strategy, workers, args)
        rows.append({"configuration": label, **result, "wall_seconds": time.perf_counter() - start})
        print(f"{label:48s} replicas={result['replicas']}  {result['images_per_second']:8.1f} images/s", flush=True)
    print(json.dumps({"cpu_count": os.cpu_count(), "steps": args.steps,
                      "global_batch": args.batch_size, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
