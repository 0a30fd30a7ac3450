"""What Drop-Activation's mask samplers cost XLA on the JAX backend.

    KERAS_BACKEND=jax python benchmarks/compile_cost.py
    KERAS_BACKEND=jax python benchmarks/compile_cost.py --models resnet-56 resnet-110 --rounds 2
    KERAS_BACKEND=jax python benchmarks/compile_cost.py --skip-models --cache resnet-56

On the default JAX device (a CPU here, the proxy for an accelerator's
compile cost; the same script runs on a GPU):

1. One draw of a (128, 32, 32, 16) mask (a ResNet's first-stage activation),
   jitted: lines of optimized HLO, fusions, and the scatter, reduce-window,
   sort and while instructions in it; threefry calls in the lowered StableHLO.
   For `jax.random.bernoulli`, both samplers, and "bytes" as it was before
   issue 18 (its words from Keras' bounded `randint`).
2. The first training step (Keras' JAX trainer, SGD with momentum, batch
   128) of each network, with ReLU and with DropActivation and each sampler:
   XLA compile seconds of the train step (jax.monitoring's
   backend_compile_duration for `train_step`) and wall seconds of the first
   `train_on_batch` (trace, compile, one step). Each variant compiles once
   per round, rounds interleaved, each round starting with the next
   variant; ratios to ReLU are medians of one run.
3. `--cache MODEL`: JAX's persistent compilation cache
   (`keras_dropact.jax_config.enable_compilation_cache`): the first step of
   DropActivation ("auto") in two fresh processes sharing an empty cache
   folder, cold then warm.

Target (issue 18, CPU proxy): with "bits" the compile of ResNet-56/110 is at
most 1.3x ReLU's.
"""

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import keras  # noqa: E402
from bench_helpers import BEFORE_18  # noqa: E402
from bench_helpers import P  # noqa: E402
from bench_helpers import CompileClock  # noqa: E402
from bench_helpers import dropact  # noqa: E402
from bench_helpers import randint_words  # noqa: E402

from keras_dropact import models  # noqa: E402
from keras_dropact.random import bernoulli  # noqa: E402

MASK_SHAPE = (128, 32, 32, 16)
HLO_INSTRUCTIONS = ("scatter", "reduce-window", "sort", "while")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hlo_counts(fn):
    """Op counts of `fn(key)` jitted and compiled for the default device."""
    import jax
    import jax.numpy as jnp

    lowered = jax.jit(fn).lower(jnp.array([1, 2], jnp.uint32))
    optimized = lowered.compile().as_text()
    kinds = collections.Counter(re.findall(r"= \S+ ([a-z\-]+)\(", optimized))
    counts = {
        "lines": len(optimized.splitlines()),
        "fusions": kinds["fusion"],
        "threefry": len(re.findall(r"call @\S*threefry", lowered.as_text())),
    }
    counts.update({kind: kinds[kind] for kind in HLO_INSTRUCTIONS})
    return counts


def mask_draws(p=P):
    """Name -> fn(key) drawing one (128, 32, 32, 16) keep mask."""
    import jax

    def before_18(key):
        with randint_words():
            return bernoulli(MASK_SHAPE, p, 7, sampler="bytes")

    return {
        "jax.random.bernoulli": lambda key: jax.random.bernoulli(key, p, MASK_SHAPE),
        "bits": lambda key: bernoulli(MASK_SHAPE, p, 7, sampler="bits"),
        "bytes": lambda key: bernoulli(MASK_SHAPE, p, 7, sampler="bytes"),
        BEFORE_18: before_18,
    }


def report_hlo():
    print(f"\none mask draw {MASK_SHAPE}, p={P}, jitted for {_device()}")
    columns = ("lines", "fusions", "threefry") + HLO_INSTRUCTIONS
    print(f"  {'sampler':<36s}" + "".join(f"{c:>14s}" for c in columns))
    table = {}
    for name, fn in mask_draws().items():
        table[name] = hlo_counts(fn)
        print(f"  {name:<36s}" + "".join(f"{table[name][c]:>14d}" for c in columns))
    return table


def first_step(model_name, activation, clock, batch_size, run=None):
    """(XLA compile s, first train_on_batch s, its CPU s) of a new model.

    The CPU seconds (of every thread of the process) move less than wall
    seconds when other jobs share the machine.
    """
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch_size, 32, 32, 3), dtype="float32")
    labels = rng.integers(0, 10, size=(batch_size,))
    keras.utils.set_random_seed(0)
    model = models.build(model_name, num_classes=10, activation=activation)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = clock.seconds
    start, cpu_start = time.perf_counter(), time.process_time()
    if run is None:
        model.train_on_batch(images, labels)
    else:
        with run():
            model.train_on_batch(images, labels)
    return (
        clock.seconds - before,
        time.perf_counter() - start,
        time.process_time() - cpu_start,
    )


def activation_variants():
    """Name -> (activation, context or None) of a network's sites."""
    return {
        "ReLU": ("relu", None),
        "DropActivation bits": (dropact("bits"), None),
        "DropActivation bytes": (dropact("bytes"), None),
        f"DropActivation {BEFORE_18}": (dropact("bytes"), randint_words),
    }


def report_compiles(model_names, rounds, batch_size):
    clock = CompileClock()
    columns = ("XLA compile s", "first step s", "first step CPU s")
    results = {}
    for model_name in model_names:
        variants = activation_variants()
        figures = {name: [] for name in variants}  # One tuple per round.
        names = list(variants)
        for round_index in range(rounds):
            # Each round starts with another variant: no variant always
            # pays for what compiling first costs.
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                activation, context = variants[name]
                figures[name].append(
                    first_step(model_name, activation, clock, batch_size, context)
                )
                keras.backend.clear_session()
        print(f"\n{model_name}: first training step, batch {batch_size}, {rounds} round(s), {_device()}")
        print(f"  {'variant':<52s}" + "".join(f"{c:>18s}{'/ ReLU':>8s}" for c in columns))
        medians = {
            name: [statistics.median(values) for values in zip(*rounds_)]
            for name, rounds_ in figures.items()
        }
        relu = medians["ReLU"]
        for name, values in medians.items():
            print(f"  {name:<52s}" + "".join(
                f"{value:18.2f}{value / reference:8.2f}" for value, reference in zip(values, relu)
            ))
        bits = medians["DropActivation bits"][0] / relu[0]
        print(f"  target: bits compile <= 1.3x ReLU: {bits:.2f}x ({'met' if bits <= 1.3 else 'NOT met'})")
        results[model_name] = {
            name: dict(zip(columns, values)) | {"rounds": figures[name]}
            for name, values in medians.items()
        }
    return results


CACHE_CHILD = r"""
import sys, time
import numpy as np, keras
from keras_dropact import models
from keras_dropact.jax_config import enable_compilation_cache
enable_compilation_cache(sys.argv[2])
model = models.build(sys.argv[1], num_classes=10)
model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x = np.zeros((128, 32, 32, 3), "float32"); y = np.zeros((128,), "int32")
start = time.perf_counter(); model.train_on_batch(x, y)
print("FIRST_STEP", time.perf_counter() - start)
"""


def report_cache(model_name):
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    print(f"\n{model_name}: first step in fresh processes, persistent compilation cache")
    seconds = []
    with tempfile.TemporaryDirectory(prefix="jax-cache-") as cache:
        for state in ("cold", "warm"):
            out = subprocess.run(
                [sys.executable, "-c", CACHE_CHILD, model_name, cache],
                env=env, capture_output=True, text=True, check=True,
            ).stdout
            seconds.append(float(out.split("FIRST_STEP")[1].split()[0]))
            print(f"  cache {state}: {seconds[-1]:.2f} s")
    print(f"  warm / cold: {seconds[1] / seconds[0]:.2f}")
    return dict(zip(("cold", "warm"), seconds))


def _device():
    import jax

    return f"{jax.devices()[0].platform} ({jax.devices()[0].device_kind}), jax {jax.__version__}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet-56", "resnet-110"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--skip-models", action="store_true", help="HLO counts only")
    parser.add_argument("--cache", metavar="MODEL", help="time the persistent cache on MODEL")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        parser.error(f"needs KERAS_BACKEND=jax (got {keras.backend.backend()!r})")
    print(f"keras={keras.__version__} cpus={os.cpu_count()} p={P}")
    figures = {"hlo": report_hlo()}
    if not args.skip_models:
        figures["first_step"] = report_compiles(args.models, args.rounds, args.batch_size)
    if args.cache:
        figures["cache"] = report_cache(args.cache)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
