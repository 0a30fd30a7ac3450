"""The GPU step benchmark and its PyTorch reference, run with tiny settings.

Figures are checked for presence and sanity, never for speed (machines are
shared; speed targets are printed by the benchmarks themselves). Runs on
every backend; without PyTorch the reference parts skip.
"""

import importlib.util
import json
import math

import numpy as np
import pytest

from benchmarks import gpu_step
from tests.conftest import BACKEND

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch reference")


@pytest.mark.slow
def test_smoke_run_prints_and_writes_sane_figures(tmp_path, capsys):
    path = tmp_path / "figures.json"
    argv = ["--smoke", "--models", "resnet-8", "--json", str(path)]
    if not HAS_TORCH:
        argv.append("--no-torch-reference")
    returned = gpu_step.main(argv)
    written = json.loads(path.read_text())
    assert written == json.loads(json.dumps(returned))
    printed = capsys.readouterr().out
    assert "resnet-8, float32, batch 2" in printed and "resnet-8, mixed_bfloat16" in printed

    rows = written["results"]
    keras_variants = ["ReLU", "DropActivation[bits]", "DropActivation[bytes]"]
    torch_variants = ["torch ReLU", "torch DropActivation"] if HAS_TORCH else []
    for precision in ("float32", "mixed_bfloat16"):
        block = {r["variant"]: r for r in rows if r["precision"] == precision}
        assert list(block) == keras_variants + torch_variants
        for row in block.values():
            assert row["model"] == "resnet-8"
            assert row["images_per_s"] > 0 and math.isfinite(row["images_per_s"])
            assert row["first_step_s"] > 0
            assert 0 < row["step_ratio_to_relu"] < math.inf
            if BACKEND == "jax" and row["framework"] == "keras":
                assert row["xla_compile_s"] > 0
            else:
                assert row["xla_compile_s"] is None
        assert block["ReLU"]["step_ratio_to_relu"] == 1.0
        # The same network in both frameworks.
        assert {r["trainable_params"] for r in block.values()} == {
            block["ReLU"]["trainable_params"]
        }
        # The sampler "auto" picks here is one of the two timed.
        assert [r["sampler"] for r in block.values()].count(
            f"{written['auto_sampler']} (auto)"
        ) == 1
    if not written["on_gpu"]:
        assert written["targets"] == [
            "targets: set for the JAX backend on a GPU; not applicable here"
        ]


def test_an_unknown_network_is_one_clear_error(capsys):
    with pytest.raises(SystemExit):
        gpu_step.main(["--models", "resnet-21", "--no-torch-reference"])
    assert "invalid model 'resnet-21': expected resnet-<6n+2>" in capsys.readouterr().err


@needs_torch
@pytest.mark.parametrize(
    "name", ["resnet-8", "resnet-20", "resnet-110", "wrn-10-1", "wrn-16-4", "wrn-28-10"]
)
def test_reference_networks_have_the_keras_parameter_counts(name):
    from benchmarks import torch_reference

    torch_count = torch_reference.trainable_params(gpu_step.torch_model(name, "relu"))
    if name in ("resnet-8", "wrn-10-1"):
        expected = gpu_step.trainable_params(gpu_step.keras_model(name, "relu"))
    else:  # The presets' published counts.
        expected = gpu_step.models.get_preset(name)["params"][10]
    assert torch_count == expected


@needs_torch
def test_reference_drop_activation_is_eq_3_with_rate_p():
    import torch

    from benchmarks import torch_reference

    torch.manual_seed(0)
    layer = torch_reference.DropActivation(p=0.95)
    x = -torch.ones(1000, 1000)
    y = layer.train()(x)
    assert set(torch.unique(y).tolist()) <= {0.0, -1.0}
    kept = (y == 0).float().mean().item()
    assert abs(kept - 0.95) < 5 * np.sqrt(0.95 * 0.05 / x.numel())
    np.testing.assert_allclose(layer.eval()(x).numpy(), -0.05, rtol=1e-6)
