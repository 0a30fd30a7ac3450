"""What Drop-Activation costs next to ReLU, LeakyReLU and Dropout.

Two measurements, each as the median over rounds in which every variant runs
once (so that load from other processes hits all variants alike), with ratios
to ReLU measured in the same run:

1. one layer, forward + backward, on a (128, 32, 32, 64) float32 tensor;
   also the inference forward pass of DropActivation against LeakyReLU;
2. one training step (SGD with momentum, cross-entropy) of a network from
   the model factory (`--model`, default ResNet-20: the thinnest CIFAR
   ResNet, where activations weigh most against the convolutions) on a batch
   of 128 32x32x3 images, with each activation at every activation site.

Targets (issue): a training step with DropActivation costs at most 1.05x the
ReLU step, and inference costs what LeakyReLU costs. Issue 18: the step with
DropActivation's "auto" sampler costs no more than before issue 18 (the
`bytes` sampler drawing its words with Keras' bounded `randint`, timed in the
same run).

    KERAS_BACKEND=tensorflow python benchmarks/layer_overhead.py
    python benchmarks/layer_overhead.py --model wrn-16-4
    python benchmarks/layer_overhead.py --jit        # TF graphs under XLA
    KERAS_BACKEND=jax python benchmarks/layer_overhead.py

Variants besides the layers themselves:

- `naive DropAct`: the textbook implementation (`uniform < p`, then
  `where`), for comparison;
- `fixed-mask floor`: DropActivation's training path with the sampler
  replaced by a constant mask drawn once: it still applies a mask (one
  multiply forward, one backward) but draws no random number, so it is what
  any Drop-Activation built from `keras.ops` costs at the very least;
- `DropActivation` is the layer as users get it (`sampler="auto"`, which
  picks "bytes" on a CPU); `DropActivation[bits]` forces the accelerator
  sampler, `DropActivation[bytes, randint words (before #18)]` is the
  sampler as it was before issue 18.

On the TensorFlow backend Keras does not use XLA on CPU unless asked, so
plain `tf.function` graphs are the default here.
"""

import argparse
import inspect
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import keras  # noqa: E402
from keras import ops  # noqa: E402

from bench_helpers import BEFORE_18  # noqa: E402
from bench_helpers import P  # noqa: E402
from bench_helpers import dropact  # noqa: E402
from bench_helpers import randint_words  # noqa: E402

from keras_dropact import models  # noqa: E402
from keras_dropact import DropActivation  # noqa: E402
from keras_dropact.random import choose_sampler  # noqa: E402

BEFORE = f"DropActivation[{BEFORE_18}]"
LAYER_SHAPE = (128, 32, 32, 64)


class NaiveDropActivation(keras.layers.Layer):
    """`where(uniform < p, relu(x), x)`: the baseline being improved on."""

    def __init__(self, p=P, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.p = p
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training:
            return ops.leaky_relu(inputs, negative_slope=1.0 - self.p)
        keep = ops.less(keras.random.uniform(ops.shape(inputs), seed=self.seed_generator), self.p)
        return ops.where(keep, ops.relu(inputs), inputs)


class FixedMaskDropActivation(DropActivation):
    """DropActivation with its sampler replaced by a constant mask: the floor.

    The mask (which elements drop the ReLU, probability 1 - p) is drawn once
    with NumPy at the first call, for a fixed batch size; every call then
    goes through `DropActivation`'s own training path with that mask, so the
    difference between this variant and `DropActivation` is the cost of
    sampling.
    """

    def __init__(self, batch_size, p=P, **kwargs):
        super().__init__(p=p, **kwargs)
        self.batch_size = batch_size
        self._dropped = None  # A NumPy array once drawn.

    def _sample_dropped(self, inputs):
        if self._dropped is None:
            shape = (self.batch_size,) + tuple(inputs.shape[1:])
            self._dropped = np.random.default_rng(0).random(shape) >= self.p
        return ops.convert_to_tensor(self._dropped)


def activation_factories(batch_size):
    """Name -> a function returning a fresh activation block (a layer)."""
    return {
        "ReLU": lambda: keras.layers.ReLU(),
        "LeakyReLU(0.05)": lambda: keras.layers.LeakyReLU(negative_slope=1.0 - P),
        "ReLU+Dropout(0.05)": lambda: keras.Sequential(
            [keras.layers.ReLU(), keras.layers.Dropout(1.0 - P)]
        ),
        "fixed-mask floor": lambda: FixedMaskDropActivation(batch_size, p=P),
        "DropActivation": lambda: DropActivation(p=P),
        "DropActivation[bits]": dropact("bits"),
        BEFORE: dropact("bytes"),
        "naive DropAct": lambda: NaiveDropActivation(p=P),
    }


def as_before_18(name, fn):
    """`fn`, run (traced) with the words of before issue 18 for BEFORE."""
    if name != BEFORE:
        return fn

    def run():
        with randint_words():
            return fn()

    return run


def layer_step_fn(layer, x, grad, jit, training=True):
    """A no-argument function running layer forward (+ backward if training)
    and returning host data, so the timing includes the whole computation."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # One tf.function per variant.

        @tf.function(jit_compile=jit)
        def step():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x, training=training)
            if not training:
                return tf.reduce_sum(y)
            return tf.reduce_sum(tape.gradient(y, x, output_gradients=grad))

        return lambda: float(step())
    if backend == "jax":
        import jax

        layer.build(x.shape)
        state = [v.value for v in layer.non_trainable_variables]
        # stateless_call hands keyword arguments to `call` unfiltered.
        kwargs = {"training": training} if "training" in inspect.signature(layer.call).parameters else {}

        @jax.jit
        def step(state, x):
            def forward(x):
                y, new_state = layer.stateless_call([], state, x, **kwargs)
                return y, new_state

            if not training:
                return forward(x)[0].sum(), state
            y, vjp, new_state = jax.vjp(forward, x, has_aux=True)
            return vjp(grad)[0].sum(), new_state

        def run():
            nonlocal state
            out, state = step(state, x)
            return float(out)

        return run
    if backend == "torch":
        import torch

        def run():
            xx = x.detach().requires_grad_(training)
            y = layer(xx, training=training)
            if not training:
                return float(y.sum())
            y.backward(grad)
            return float(xx.grad.sum())

        return run
    raise ValueError(f"Unsupported backend {backend!r}")


def time_rounds(fns, rounds, warmup=2):
    """Median seconds per function, running every function once per round."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def report(title, medians, reference):
    print(f"\n{title}")
    print(f"  {'variant':<52s} {'median ms':>10s} {'/ ' + reference:>12s}")
    for name, seconds in medians.items():
        ratio = seconds / medians[reference]
        print(f"  {name:<52s} {seconds * 1e3:10.2f} {ratio:12.3f}")


def bench_layers(rounds, jit):
    rng = np.random.default_rng(0)
    x = ops.convert_to_tensor(rng.standard_normal(LAYER_SHAPE, dtype="float32"))
    grad = ops.convert_to_tensor(rng.standard_normal(LAYER_SHAPE, dtype="float32"))
    fns = {}
    for name, make in activation_factories(LAYER_SHAPE[0]).items():
        if name == "ReLU+Dropout(0.05)":
            fns["Dropout(0.05)"] = layer_step_fn(keras.layers.Dropout(1.0 - P), x, grad, jit)
        fns[name] = as_before_18(name, layer_step_fn(make(), x, grad, jit))
    report(f"layer forward+backward, {LAYER_SHAPE} float32", time_rounds(fns, rounds), "ReLU")
    inference = {
        "ReLU": layer_step_fn(keras.layers.ReLU(), x, grad, jit, training=False),
        "LeakyReLU(0.05)": layer_step_fn(
            keras.layers.LeakyReLU(negative_slope=1.0 - P), x, grad, jit, training=False
        ),
        "DropActivation": layer_step_fn(DropActivation(p=P), x, grad, jit, training=False),
    }
    report("layer inference forward", time_rounds(inference, rounds), "LeakyReLU(0.05)")


def bench_network(rounds, jit, batch_size, model_name="resnet-20"):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch_size, 32, 32, 3), dtype="float32")
    labels = rng.integers(0, 10, size=(batch_size,))
    fns = {}
    for name, make in activation_factories(batch_size).items():
        keras.utils.set_random_seed(0)
        model = models.build(model_name, num_classes=10, activation=make)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit,
        )
        if name == "ReLU":
            params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        fns[name] = as_before_18(
            name, lambda model=model: model.train_on_batch(images, labels)
        )
    medians = time_rounds(fns, rounds)
    report(
        f"{model_name} training step, batch {batch_size} ({params:,} trainable parameters)",
        medians,
        "ReLU",
    )
    ratio = {name: seconds / medians["ReLU"] for name, seconds in medians.items()}
    print(
        f"\n  target: DropActivation step <= 1.05x ReLU: measured "
        f"{ratio['DropActivation']:.3f}x, of which applying the mask "
        f"{ratio['fixed-mask floor'] - 1:+.3f} and sampling it "
        f"{ratio['DropActivation'] - ratio['fixed-mask floor']:+.3f}"
    )
    print(
        f"  target (issue 18): DropActivation (auto = {choose_sampler()}) step "
        f"<= before #18: {ratio['DropActivation']:.3f}x ReLU against "
        f"{ratio[BEFORE]:.3f}x ({'met' if ratio['DropActivation'] <= ratio[BEFORE] else 'NOT met'})"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jit", action="store_true", help="compile with XLA (TF: jit_compile=True)")
    parser.add_argument("--layer-rounds", type=int, default=20)
    parser.add_argument("--network-rounds", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--model", default="resnet-20",
        choices=[n for n in models.names() if models.get_preset(n)["family"] != "mlp"],
        help="network of the training-step measurement (a model factory preset)",
    )
    parser.add_argument("--skip-network", action="store_true")
    args = parser.parse_args(argv)
    jit = args.jit or keras.backend.backend() == "jax"
    print(
        f"backend={keras.backend.backend()} keras={keras.__version__} jit={jit} "
        f"p={P} cpus={os.cpu_count()}"
    )
    bench_layers(args.layer_rounds, jit)
    if not args.skip_network:
        bench_network(args.network_rounds, jit, args.batch_size, args.model)


if __name__ == "__main__":
    main()
