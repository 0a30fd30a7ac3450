"""A `.keras` file written by the training path loads with `import keras_dropact` alone,
compiled with its optimizer (`TorchSGD` for the SGD recipes).

One small member of every model family is trained for one step by
`keras_dropact.training.train.train` (which saves `model.keras`); a fresh
Python process that imports only `keras` and `keras_dropact` loads every
file and must give the same inference outputs as this process.
"""

import functools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import keras

from conftest import tensorflow_only
from keras_dropact import models
from keras_dropact.layers import get_act_layer
from keras_dropact.repro.runs import build_mlp_1d
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.train import train

pytestmark = [tensorflow_only, pytest.mark.slow]

# family -> the builder's arguments for a small member: the image families
# take 8x8x1 digits, the 1-D ones MNIST-1D's (40, 1) signals.
SMALL_FAMILY_MEMBERS = {
    "cifar_resnet": dict(depth=8, block="basic", shortcut="A"),
    "resnet": dict(stage_blocks=(1, 1), stage_widths=(8, 16), stem_width=8, block="bottleneck"),
    "preresnet": dict(depth=11, stage_widths=(8, 16, 32), stem_width=4),
    "wide_resnet": dict(depth=10, width=1, dropout=0.3),
    "densenet_bc": dict(depth=10, growth_rate=4),
    "resnext": dict(depth=11, cardinality=2, base_width=2, widen_factor=1),
    "simple_cnn": dict(widths=(4, 8, 16), hidden=8),
    "mnist1d_mlp": dict(hidden=8),
    "mnist1d_cnn": dict(channels=4),
    "simple_cnn_1d": dict(widths=(4, 8, 16), hidden=8),
}
SIGNAL_FAMILIES = ("mnist1d_mlp", "mnist1d_cnn", "simple_cnn_1d")


def _family_builder(family, config, info, recipe):
    return models.FAMILIES[family](
        **SMALL_FAMILY_MEMBERS[family],
        input_shape=info["shape"],
        num_classes=info["num_classes"],
        act_layer=get_act_layer(config.activation, config.p),
        seed=config.seed,
        weight_decay=recipe.weight_decay,
    )


def test_every_family_covered():
    # `mlp` is trained through repro's flattening builder (`mlp-1d`).
    assert set(SMALL_FAMILY_MEMBERS) | {"mlp"} == set(models.FAMILIES)


@pytest.fixture(scope="module")
def saved_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    builders = {f: functools.partial(_family_builder, f) for f in SMALL_FAMILY_MEMBERS}
    builders["mlp"] = build_mlp_1d
    files = {}
    for family, builder in builders.items():
        dataset = "mnist1d" if family in SIGNAL_FAMILIES else "digits"
        config = TrainConfig(
            model=f"small-{family}", dataset=dataset, epochs=1, steps_per_epoch=1,
            batch_size=128, seed=1, run_dir=str(root / family),
        )
        train(config, verbose=0, model_builder=builder)
        files[family] = str(root / family / "model.keras")
    return files


def test_saved_models_load_with_keras_dropact_alone(saved_files, tmp_path):
    rng = np.random.default_rng(0)
    inputs = {
        family: rng.uniform(-1, 2, (5, 40, 1) if family in SIGNAL_FAMILIES else (5, 8, 8, 1)).astype("float32")
        for family in saved_files
    }
    np.savez(tmp_path / "x.npz", **inputs)
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        import keras
        import keras_dropact
        files = json.loads({json.dumps(json.dumps(saved_files))})
        x = np.load({str(tmp_path / "x.npz")!r})
        models = {{f: keras.saving.load_model(p) for f, p in files.items()}}
        out = {{f: m.predict(x[f], verbose=0) for f, m in models.items()}}
        np.savez({str(tmp_path / "out.npz")!r}, **out)
        loaded = sorted(m for m in sys.modules if m.startswith("keras_dropact"))
        optimizers = {{f: type(m.optimizer).__name__ for f, m in models.items()}}
        print(json.dumps([loaded, optimizers]))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded_modules, optimizers = json.loads(result.stdout.strip().splitlines()[-1])
    assert not [m for m in loaded_modules if m.startswith(("keras_dropact.models", "keras_dropact.training"))]
    # Compiled as trained: the quick recipe's SGD, TorchSGD.
    assert optimizers == {family: "TorchSGD" for family in saved_files}
    fresh = np.load(tmp_path / "out.npz")
    for family, path in saved_files.items():
        expected = keras.saving.load_model(path).predict(inputs[family], verbose=0)
        np.testing.assert_allclose(fresh[family], expected, rtol=0, atol=1e-6, err_msg=family)
