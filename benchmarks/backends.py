"""Training images/s on the TensorFlow and JAX backends, and JAX data parallelism.

    python benchmarks/backends.py [--model resnet-20] [--batch-size 128] [--steps 5]

The same `dropact train` run (`training.train.train`, `light`) in fresh
processes, each configuration once:

- TensorFlow and JAX, Drop-Activation and ReLU, on one device;
- JAX `--strategy data-parallel` over 2 CPU devices of one process
  (`XLA_FLAGS=--xla_force_host_platform_device_count=2`) and over 2 processes
  of one CPU device each (`keras.distribution.initialize` on loopback).

The data are CIFAR-shaped (32x32x3, 10 classes) random images written once to
a temporary `folder:` dataset, so no download is needed and every backend
reads the same pipeline. Images/s is `results.json`'s (epochs after the
first, which traces and compiles). The global batch is the same everywhere.
With `--rounds N` the configurations run N times, interleaved, and each
reports its median: on a shared machine the load changes between runs.

On a CPU-only host the devices and processes share the same cores: the data
parallel rows measure the overhead of splitting the batch, not a speed-up.
Run it on a multi-GPU host for scaling figures.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.train import train
results = train(TrainConfig(**json.loads(sys.argv[1])), verbose=0)
print("RESULT", json.dumps({"images_per_second": results["images_per_second"],
                            "distribution": results["distribution"]}))
"""


def write_images(root, train_per_class, test_per_class, classes=10):
    """Random 32x32x3 PNGs in ROOT/{train,test}/<class>/ (a `folder:` dataset)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label in range(classes):
            folder = os.path.join(root, split, f"c{label}")
            os.makedirs(folder)
            for index in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(os.path.join(folder, f"{index}.png"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(backend, activation, devices, processes, args, data, run_root):
    label = f"{backend} {activation} {devices}dev {processes}proc"
    config = {
        "model": args.model, "dataset": f"folder:{data}", "activation": activation,
        "epochs": args.epochs, "steps_per_epoch": args.steps, "batch_size": args.batch_size,
        "augment": "none", "light": True,
        "strategy": "data-parallel" if devices * processes > 1 else "none",
        "run_dir": os.path.join(run_root, label.replace(" ", "-")),
    }
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND=backend,
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    for name in ("TF_CONFIG", "XLA_FLAGS", "KERAS_DISTRIBUTION_JOB_ADDRESSES",
                 "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID"):
        env.pop(name, None)
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    address = f"127.0.0.1:{free_port()}"
    children = []
    for process_id in range(processes):
        if processes > 1:
            env = dict(env, KERAS_DISTRIBUTION_JOB_ADDRESSES=address,
                       KERAS_DISTRIBUTION_NUM_PROCESSES=str(processes),
                       KERAS_DISTRIBUTION_PROCESS_ID=str(process_id))
        children.append(subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(config)], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        ))
    start = time.perf_counter()
    try:
        outputs = [child.communicate(timeout=args.timeout)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
    for line in outputs[0].splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            return {"configuration": label, **result, "wall_seconds": time.perf_counter() - start}
    raise RuntimeError(f"no result from {label}:\n{outputs[0][-3000:]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet-20")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch")
    parser.add_argument("--steps", type=int, default=5, help="steps per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (the first is not timed)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every configuration (median)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per configuration")
    args = parser.parse_args()
    configurations = [
        ("tensorflow", "dropact", 1, 1), ("tensorflow", "relu", 1, 1),
        ("jax", "dropact", 1, 1), ("jax", "relu", 1, 1),
        ("jax", "dropact", 2, 1), ("jax", "dropact", 1, 2),
    ]
    runs = {configuration: [] for configuration in configurations}
    with tempfile.TemporaryDirectory(prefix="dropact-bench-") as scratch:
        data = os.path.join(scratch, "images")
        write_images(data, train_per_class=args.batch_size * args.steps // 10 + 1, test_per_class=13)
        for round_index in range(args.rounds):
            for configuration in configurations:
                run_root = os.path.join(scratch, f"runs{round_index}")
                row = launch(*configuration, args, data, run_root)
                runs[configuration].append(row)
                print(f"{row['configuration']:32s} {row['images_per_second']:9.1f} images/s"
                      f"  ({row['wall_seconds']:.0f} s)", flush=True)
    rows = {}
    for configuration, results in runs.items():
        speeds = sorted(row["images_per_second"] for row in results)
        rows[configuration] = {**results[0], "images_per_second": statistics.median(speeds),
                               "all_images_per_second": speeds}

    def ratio(a, b):
        return rows[a]["images_per_second"] / rows[b]["images_per_second"]

    ratios = {
        "jax / tensorflow, dropact": ratio(("jax", "dropact", 1, 1), ("tensorflow", "dropact", 1, 1)),
        "jax / tensorflow, relu": ratio(("jax", "relu", 1, 1), ("tensorflow", "relu", 1, 1)),
        "dropact / relu, tensorflow": ratio(("tensorflow", "dropact", 1, 1), ("tensorflow", "relu", 1, 1)),
        "dropact / relu, jax": ratio(("jax", "dropact", 1, 1), ("jax", "relu", 1, 1)),
        "jax 2 devices / 1 device": ratio(("jax", "dropact", 2, 1), ("jax", "dropact", 1, 1)),
        "jax 2 processes / 1 process": ratio(("jax", "dropact", 1, 2), ("jax", "dropact", 1, 1)),
    }
    for name, value in ratios.items():
        print(f"{name:32s} {value:6.2f}")
    print(json.dumps({
        "cpu_count": os.cpu_count(), "model": args.model, "global_batch": args.batch_size,
        "steps_per_epoch": args.steps, "epochs": args.epochs, "rounds": args.rounds,
        "rows": list(rows.values()), "ratios": ratios,
    }, indent=2))


if __name__ == "__main__":
    main()
