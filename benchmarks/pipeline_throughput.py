"""Images per second of every `pipelines` augmentation on CIFAR-shaped data.

Prints, all measured in this run on the same synthetic data:
  * a plain reference pipeline: uint8 arrays in memory, batch, one vectorised
    pad-crop-flip-normalise map, prefetch;
  * `pipelines.load("cifar10", "train", ...)` for each augmentation, with
    TFDS mocked to serve the synthetic images (so the real path runs:
    TFDS reader, cache, shuffle, batch, seeded augmentation, prefetch);
  * how fast ResNet-110 trains (images/s through `train_on_batch`), from the
    `models` package when it is importable, otherwise from a small inline
    stand-in (said so in the output).

Targets (2 CPU cores): "standard" >= 0.8x the reference, "autoaugment" >=
2,000 images/s, every pipeline >= 5x the model's training throughput.

    python benchmarks/pipeline_throughput.py [--examples 20000] [--rounds 3]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Time the checkout this script is in, not another installed copy.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from keras_dropact import pipelines  # noqa: E402

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)


def synthetic_cifar(count, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, count, dtype=np.int64)
    return images, labels


def reference_pipeline(images, labels, batch_size):
    """The plain baseline: arrays in memory, batch, one vectorised map.

    As lean as such a pipeline gets: unseeded random ops, one draw per batch,
    crop and flip as two gathers, normalisation fused into one multiply-add.
    """
    std = np.array(STD, np.float32)
    scale = tf.constant(1.0 / (255.0 * std))
    offset = tf.constant(-np.array(MEAN, np.float32) / std)

    def pad_crop_flip_normalise(x, y):
        draws = tf.random.uniform([tf.shape(x)[0], 3])
        top = tf.cast(draws[:, :1] * 9, tf.int32)
        left = tf.cast(draws[:, 1:2] * 9, tf.int32)
        flip = draws[:, 2:] < 0.5
        padded = tf.pad(x, [[0, 0], [4, 4], [4, 4], [0, 0]])
        columns = left + tf.where(flip, tf.range(31, -1, -1), tf.range(32))
        x = tf.gather(padded, top + tf.range(32), axis=1, batch_dims=1)
        x = tf.gather(x, columns, axis=2, batch_dims=1)
        return tf.cast(x, tf.float32) * scale + offset, y

    return (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .batch(batch_size)
        .map(pad_crop_flip_normalise, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def epoch_rate(dataset, epochs):
    """(images per wall-clock second, images per CPU second) over `epochs`.

    CPU seconds (all threads of this process) stay meaningful when other
    jobs share the cores; wall-clock rates then swing by a factor of two.
    """
    wall, cpu, count = time.perf_counter(), time.process_time(), 0
    for _ in range(epochs):
        for images, _ in dataset:
            count += int(images.shape[0])
    return (
        count / (time.perf_counter() - wall),
        count / (time.process_time() - cpu),
    )


def build_model():
    """ResNet-110 from the `models` package, or a stand-in; (model, label)."""
    try:
        from keras_dropact import models

        return models.build("resnet-110", activation="relu"), "resnet-110"
    except (ImportError, AttributeError) as error:
        print(f"NOTE: models.build unavailable ({error!r}); timing a stand-in.")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    for width, stride in ((16, 1), (32, 2), (64, 2)):
        for block in range(3):
            s = stride if block == 0 else 1
            y = keras.layers.Conv2D(width, 3, s, padding="same", use_bias=False)(x)
            y = keras.layers.ReLU()(keras.layers.BatchNormalization()(y))
            y = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(y)
            y = keras.layers.BatchNormalization()(y)
            if s != 1 or x.shape[-1] != width:
                x = keras.layers.Conv2D(width, 1, s, use_bias=False)(x)
            x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    return keras.Model(inputs, outputs), "stand-in ResNet-20-like (NOT resnet-110)"


def model_rate(batch_size, steps):
    model, label = build_model()
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    images, labels = synthetic_cifar(batch_size, seed=1)
    images = (images / 255.0).astype(np.float32)
    model.train_on_batch(images, labels)  # builds and compiles the step
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    return steps * batch_size / (time.perf_counter() - start), label


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating measurements per pipeline; medians are shown")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per measurement")
    parser.add_argument("--model-steps", type=int, default=8)
    args = parser.parse_args(argv)

    images, labels = synthetic_cifar(args.examples)

    def serve_synthetic(self, split, **kwargs):
        return tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})

    datasets = {"reference": reference_pipeline(images, labels, args.batch_size)}
    with tfds.testing.mock_data(as_dataset_fn=serve_synthetic):
        for name in pipelines.augmentations():
            datasets[name] = pipelines.load(
                "cifar10", "train", args.batch_size, augment=name, seed=0
            )
        for dataset in datasets.values():  # fills caches, traces the maps
            epoch_rate(dataset, 1)
        measured = {name: [] for name in datasets}
        for _ in range(args.rounds):
            for name, dataset in datasets.items():
                measured[name].append(epoch_rate(dataset, args.epochs))
    rates = {n: statistics.median(r[0] for r in m) for n, m in measured.items()}
    cpu_rates = {n: statistics.median(r[1] for r in m) for n, m in measured.items()}
    # Ratios pair each measurement with the reference's of the same round,
    # which cancels most of the drift other jobs on the machine cause.
    ratios = {
        n: statistics.median(
            r[0] / ref[0] for r, ref in zip(m, measured["reference"])
        )
        for n, m in measured.items()
    }

    model_images_per_s, model_label = model_rate(args.batch_size, args.model_steps)

    print(
        f"\nCIFAR-shaped synthetic data: {args.examples} examples, batch "
        f"{args.batch_size}, median of {args.rounds}; TF {tf.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'pipeline':<14}{'images/s':>10}{'x reference':>13}{'x model':>9}"
          f"{'images/CPU-s':>14}{'x reference':>13}")
    for name, rate in rates.items():
        print(
            f"{name:<14}{rate:>10,.0f}{ratios[name]:>13.2f}"
            f"{rate / model_images_per_s:>9.1f}{cpu_rates[name]:>14,.0f}"
            f"{cpu_rates[name] / cpu_rates['reference']:>13.2f}"
        )
    print(f"model {model_label}: {model_images_per_s:,.0f} images/s (train_on_batch)")
    checks = {
        "standard >= 0.8x reference": ratios["standard"] >= 0.8,
        "autoaugment >= 2,000 images/s": rates["autoaugment"] >= 2000,
        "every pipeline >= 5x the model": min(rates.values()) >= 5 * model_images_per_s,
    }
    for check, passed in checks.items():
        print(f"{'PASS' if passed else 'FAIL'}  {check}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
