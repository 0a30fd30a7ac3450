"""Training-step speed on one device: Keras on the current backend against the
official-style PyTorch code, ReLU against Drop-Activation, in one run.

    KERAS_BACKEND=jax python benchmarks/gpu_step.py --json gpu_step.json
    KERAS_BACKEND=jax python benchmarks/gpu_step.py --models resnet-110 --samplers bits
    python benchmarks/gpu_step.py --smoke    # tiny networks and batches: a CPU check

For every network (`resnet-<6n+2>`, `wrn-<6n+4>-<k>`; default ResNet-110 and
WRN-28-10, CIFAR shapes, batch 128) and precision (float32, Keras'
mixed_bfloat16 / PyTorch's bf16 autocast):

- Keras: the network of `keras_dropact.models` with ReLU and with
  `DropActivation(p=0.95, sampler=...)` for each sampler, trained with
  `train_on_batch` (SGD with momentum, cross-entropy; compiled by XLA on
  JAX, as Keras compiles by default on the other backends);
- PyTorch (`--torch-reference`, on by default when PyTorch is installed):
  the same network in plain PyTorch (`torch_reference.py`, NCHW, eager,
  `cudnn.benchmark`) with ReLU and with the official code's Drop-Activation
  (a `torch.bernoulli` mask, eq. 3), on the device Keras uses.

Figures, per variant: first-step seconds (the first two steps: trace,
compile, two steps), on JAX the XLA compile seconds of the train step,
images/s (the median over `--rounds` rounds of `--steps` steps, every variant
once per round; each step returns its loss to the host, as `train_on_batch`
does), and the step time relative to ReLU of the same framework and precision.
Ratios come from one run. `--json` writes them after every network.

Targets (issue 18; JAX backend, GPU, float32): ResNet-110 DropActivation step
<= 1.03x ReLU's and first step <= 1.3x; WRN-28-10 step <= 1.02x. The script
prints them against the `"auto"` sampler's figures when it runs on a GPU.
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Keras on JAX and PyTorch share the device: JAX must not reserve 75% of
# its memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

import keras  # noqa: E402
from bench_helpers import P  # noqa: E402
from bench_helpers import CompileClock  # noqa: E402
from bench_helpers import dropact  # noqa: E402

from keras_dropact import models  # noqa: E402
from keras_dropact.random import SAMPLERS  # noqa: E402
from keras_dropact.random import choose_sampler  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16")
FULL = {"models": ["resnet-110", "wrn-28-10"], "batch_size": 128, "steps": 20, "rounds": 3}
SMOKE = {"models": ["resnet-8", "wrn-10-1"], "batch_size": 2, "steps": 1, "rounds": 1}
# model -> (step ratio, first-step ratio or None): JAX, GPU, float32.
TARGETS = {"resnet-110": (1.03, 1.3), "wrn-28-10": (1.02, None)}
WRN_DROPOUT = models.get_preset("wrn-28-10")["kwargs"]["dropout"]


def parse_model(name):
    """`resnet-D` -> ("resnet", D); `wrn-D-K` -> ("wrn", D, K); checks D."""
    resnet = re.fullmatch(r"resnet-(\d+)", name)
    wrn = re.fullmatch(r"wrn-(\d+)-(\d+)", name)
    if resnet and int(resnet[1]) >= 8 and (int(resnet[1]) - 2) % 6 == 0:
        return ("resnet", int(resnet[1]))
    if wrn and int(wrn[1]) >= 10 and (int(wrn[1]) - 4) % 6 == 0 and int(wrn[2]) >= 1:
        return ("wrn", int(wrn[1]), int(wrn[2]))
    raise argparse.ArgumentTypeError(
        f"invalid model {name!r}: expected resnet-<6n+2> (e.g. resnet-110) "
        "or wrn-<6n+4>-<k> (e.g. wrn-28-10)"
    )


def keras_model(name, activation):
    spec = parse_model(name)
    if spec[0] == "resnet":
        return models.build("resnet-110", depth=spec[1], activation=activation)
    return models.build("wrn-28-10", depth=spec[1], width=spec[2], activation=activation)


def torch_model(name, activation):
    import torch_reference

    spec = parse_model(name)
    if spec[0] == "resnet":
        return torch_reference.CifarResNet(spec[1], act=activation)
    return torch_reference.WideResNet(spec[1], spec[2], WRN_DROPOUT, act=activation)


def trainable_params(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


class KerasStep:
    """`train_on_batch` of one Keras network on a fixed batch on the device."""

    framework = "keras"

    def __init__(self, name, activation, precision, batch_size):
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(precision)
        try:
            keras.utils.set_random_seed(0)
            self.model = keras_model(name, activation)
        finally:
            keras.config.set_dtype_policy(policy)
        self.model.compile(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        rng = np.random.default_rng(0)
        self.x = keras.ops.convert_to_tensor(
            rng.standard_normal((batch_size, 32, 32, 3), dtype="float32")
        )
        self.y = keras.ops.convert_to_tensor(rng.integers(0, 10, batch_size), "int32")
        self.params = trainable_params(self.model)

    def __call__(self):
        return self.model.train_on_batch(self.x, self.y)


class TorchStep:
    """One step of the plain PyTorch network, the loss returned to the host."""

    framework = "torch"

    def __init__(self, name, activation, precision, batch_size, device):
        import torch

        import torch_reference

        torch.manual_seed(0)
        self.torch = torch
        self.model = torch_model(name, activation).to(device).train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.x = torch.randn(batch_size, 3, 32, 32, device=device)
        self.y = torch.randint(0, 10, (batch_size,), device=device)
        self.device_type = torch.device(device).type
        self.bf16 = precision == "mixed_bfloat16"
        self.params = torch_reference.trainable_params(self.model)

    def __call__(self):
        torch = self.torch
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16):
            loss = torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        return loss.item()


def variants(name, precision, args, torch_device):
    """Label -> (step object, sampler label) of one network and precision."""
    auto = choose_sampler()
    steps = {"ReLU": (KerasStep(name, "relu", precision, args.batch_size), "-")}
    for sampler in args.samplers:
        label = f"{sampler} (auto)" if sampler == auto else sampler
        steps[f"DropActivation[{sampler}]"] = (
            KerasStep(name, dropact(sampler), precision, args.batch_size), label
        )
    if torch_device is not None:
        for activation, label in (("relu", "ReLU"), ("dropact", "DropActivation")):
            steps[f"torch {label}"] = (
                TorchStep(name, activation, precision, args.batch_size, torch_device),
                "torch.bernoulli" if activation == "dropact" else "-",
            )
    return steps


def measure(name, precision, args, torch_device, clock):
    """The figures of every variant of one network and precision."""
    steps = variants(name, precision, args, torch_device)
    rows = {}
    for label, (step, sampler) in steps.items():
        compiled = clock.seconds if clock else 0.0
        start = time.perf_counter()
        step()
        step()
        rows[label] = {
            "framework": step.framework, "model": name, "precision": precision,
            "variant": label, "sampler": sampler, "trainable_params": step.params,
            "first_step_s": time.perf_counter() - start,
            "xla_compile_s": clock.seconds - compiled if clock and step.framework == "keras" else None,
        }
    speeds = {label: [] for label in steps}
    for _ in range(args.rounds):
        for label, (step, _) in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            speeds[label].append(args.steps * args.batch_size / (time.perf_counter() - start))
    for label, row in rows.items():
        relu = "ReLU" if row["framework"] == "keras" else "torch ReLU"
        row["images_per_s"] = statistics.median(speeds[label])
        row["step_ratio_to_relu"] = statistics.median(speeds[relu]) / row["images_per_s"]
        row["first_step_ratio_to_relu"] = row["first_step_s"] / rows[relu]["first_step_s"]
    return list(rows.values())


def print_block(rows, args):
    first = rows[0]
    print(
        f"\n{first['model']}, {first['precision']}, batch {args.batch_size}, "
        f"{args.rounds} x {args.steps} steps"
    )
    print(
        f"  {'variant':<28s}{'sampler':>17s}{'first step s':>14s}{'/ ReLU':>8s}"
        f"{'XLA compile s':>15s}{'images/s':>11s}{'step / ReLU':>13s}"
    )
    for row in rows:
        xla = "-" if row["xla_compile_s"] is None else f"{row['xla_compile_s']:.2f}"
        print(
            f"  {row['variant']:<28s}{row['sampler']:>17s}{row['first_step_s']:14.2f}"
            f"{row['first_step_ratio_to_relu']:8.2f}{xla:>15s}"
            f"{row['images_per_s']:11.1f}{row['step_ratio_to_relu']:13.3f}"
        )


def check_targets(results, on_gpu):
    """Lines comparing the "auto" sampler's float32 figures with the targets."""
    if keras.backend.backend() != "jax" or not on_gpu:
        return ["targets: set for the JAX backend on a GPU; not applicable here"]
    auto = f"DropActivation[{choose_sampler()}]"
    lines = []
    for row in results:
        if row["variant"] != auto or row["precision"] != "float32" or row["model"] not in TARGETS:
            continue
        step_target, first_target = TARGETS[row["model"]]
        lines.append(
            f"target {row['model']}: step {row['step_ratio_to_relu']:.3f}x ReLU "
            f"(<= {step_target}: {'met' if row['step_ratio_to_relu'] <= step_target else 'NOT met'})"
        )
        if first_target:
            ratio = row["first_step_ratio_to_relu"]
            lines.append(
                f"target {row['model']}: first step {ratio:.2f}x ReLU "
                f"(<= {first_target}: {'met' if ratio <= first_target else 'NOT met'})"
            )
    return lines


def describe_devices(torch_device):
    """(description, whether Keras runs on a GPU)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        keras_device, on_gpu = f"{device.platform} {device.device_kind}", device.platform == "gpu"
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        keras_device, on_gpu = (gpus[0].name if gpus else "CPU"), bool(gpus)
    else:
        import torch

        on_gpu = torch.cuda.is_available()
        keras_device = torch.cuda.get_device_name() if on_gpu else "CPU"
    text = f"keras {keras.__version__} ({backend}) on {keras_device}"
    if torch_device is not None:
        import torch

        name = torch.cuda.get_device_name() if torch_device == "cuda" else "CPU"
        text += f"; torch {torch.__version__} on {name}"
    return text, on_gpu


def torch_device_or_none(wanted):
    if not wanted:
        return None
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: no PyTorch reference")
        return None
    torch.backends.cudnn.benchmark = True
    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=str, help=f"default {FULL['models']}")
    parser.add_argument("--batch-size", type=int, help=f"default {FULL['batch_size']}")
    parser.add_argument("--steps", type=int, help=f"timed steps per round, default {FULL['steps']}")
    parser.add_argument("--rounds", type=int, help=f"default {FULL['rounds']}")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    parser.add_argument(
        "--samplers", nargs="+", choices=[s for s in SAMPLERS if s != "auto"],
        default=["bits", "bytes"], help="DropActivation samplers to time",
    )
    parser.add_argument(
        "--torch-reference", action=argparse.BooleanOptionalAction, default=True,
        help="also time the plain PyTorch networks",
    )
    parser.add_argument(
        "--threefry-gpu-kernel", action="store_true",
        help="JAX: jax_threefry_gpu_kernel_lowering (faster compiles, more memory)",
    )
    parser.add_argument("--smoke", action="store_true", help=f"tiny settings: {SMOKE}")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name in args.models:
        try:
            parse_model(name)
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))
    if args.threefry_gpu_kernel:
        if keras.backend.backend() != "jax":
            parser.error("--threefry-gpu-kernel needs KERAS_BACKEND=jax")
        import jax

        jax.config.update("jax_threefry_gpu_kernel_lowering", True)

    torch_device = torch_device_or_none(args.torch_reference)
    devices, on_gpu = describe_devices(torch_device)
    print(f"{devices}; p={P}; DropActivation(sampler='auto') uses {choose_sampler()!r} here")
    clock = CompileClock() if keras.backend.backend() == "jax" else None
    figures = {
        "backend": keras.backend.backend(), "devices": devices, "on_gpu": on_gpu,
        "auto_sampler": choose_sampler(), "threefry_gpu_kernel": args.threefry_gpu_kernel,
        "batch_size": args.batch_size, "steps": args.steps, "rounds": args.rounds,
        "results": [],
    }
    # float32 first: the targets' figures come first if the run is cut short.
    for precision in args.precisions:
        for name in args.models:
            rows = measure(name, precision, args, torch_device, clock)
            print_block(rows, args)
            figures["results"] += rows
            keras.backend.clear_session()
            if args.json:
                _write_json(args.json, figures)
    figures["targets"] = check_targets(figures["results"], on_gpu)
    print("\n" + "\n".join(figures["targets"]))
    if args.json:
        _write_json(args.json, figures)
    return figures


def _write_json(path, figures):
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        json.dump(figures, f, indent=1)
    os.replace(temporary, path)


if __name__ == "__main__":
    main()
