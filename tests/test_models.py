"""The model factory against architectures.md: counts, sites, layer order.

Every test is backend-neutral. The `test_portable_*` tests are the
representative set meant for the other backends (the Keras backend is fixed
at import, so each needs its own process):

    KERAS_BACKEND=jax pytest tests/test_models.py -k portable
    KERAS_BACKEND=torch pytest tests/test_models.py -k portable
"""

import functools
import math

import numpy as np
import pytest

import keras

from keras_dropact import models
from keras_dropact import DropActivation
from keras_dropact import RandomizedReLU
from keras_dropact.layers import ZeroPadShortcut
from keras_dropact.layers import activation_layer
from keras_dropact.models.common import LayerFactory

# Activation sites of each preset, counted from architectures.md:
# post-activation ResNets: stem + per block (convs - 1) inside + 1 after the
# add; pre-activation nets: one per conv of a unit + the final one; DenseNet:
# 2 per layer + 1 per transition + final; small nets: one per hidden layer.
ACTIVATION_SITES = {
    "resnet-20": 1 + 2 * 9,
    "resnet-56": 1 + 2 * 27,
    "resnet-110": 1 + 2 * 54,
    "resnet-164": 1 + 3 * 54,
    "preresnet-164": 3 * 54 + 1,
    "wrn-28-10": 2 * 12 + 1,
    "wrn-16-8": 2 * 6 + 1,
    "wrn-16-4": 2 * 6 + 1,
    "densenet-bc-100-12": 2 * 48 + 2 + 1,
    "densenet-bc-190-40": 2 * 93 + 2 + 1,
    "resnext-29-8x64d": 1 + 3 * 9,
    "resnet-18": 1 + 2 * 8,
    "simple-cnn": 3 + 1,
    "simple-cnn-nobn": 3 + 1,
    "mlp": 3,
    "simple-cnn-1d": 3 + 1,
    "mnist1d-mlp": 2,
    "mnist1d-cnn": 3,
}
# One preset per kind of layer (option-A shortcut, projections, dropout,
# concatenation, grouped convolution, dense nets); the deep bottleneck
# ResNets add none and are slow to build on JAX.
PORTABLE = [
    "resnet-20",
    "wrn-16-4",
    "densenet-bc-100-12",
    "resnext-29-8x64d",
    "resnet-18",
    "simple-cnn",
    "mlp",
]
SMALL = ["resnet-20", "wrn-16-4", "simple-cnn", "mlp"]
EMNIST = [  # Table 4: 28x28x1 inputs, 47 classes.
    "resnet-164",
    "preresnet-164",
    "wrn-28-10",
    "densenet-bc-100-12",
    "resnext-29-8x64d",
]


@functools.lru_cache(maxsize=None)
def preset_model(name):
    """The default build (dropact, default classes) of a preset, once."""
    return models.build(name)


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def count(model, cls):
    return sum(isinstance(layer, cls) for layer in model.layers)


def parents(model, name):
    """Names of the layers whose outputs feed layer `name`."""
    inputs = keras.tree.flatten(model.get_layer(name).input)
    return [t._keras_history.operation.name for t in inputs]


def out_shape(model, name):
    return tuple(model.get_layer(name).output.shape)


def sample_input(model, batch=2, seed=0):
    shape = (batch,) + tuple(model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def check_faithful_layers(model):
    """Convs bias-free where BN follows, PyTorch BN, no ReLU layer nor fused activation."""
    has_bn = any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert layer.use_bias is not has_bn, layer.name
            assert layer.activation is keras.activations.linear, layer.name
        if isinstance(layer, keras.layers.BatchNormalization):
            assert (layer.momentum, layer.epsilon) == (0.9, 1e-5), layer.name
        if isinstance(layer, keras.layers.Dense):
            assert layer.use_bias, layer.name
            assert layer.activation is keras.activations.linear, layer.name
        assert not isinstance(
            layer, (keras.layers.ReLU, keras.layers.Activation)
        ), layer.name
        if isinstance(layer, keras.layers.Conv2D) and layer.strides != (1, 1):
            # PyTorch's symmetric padding=k//2, not Keras' "same".
            pad = layer.kernel_size[0] // 2
            if pad:
                assert layer.padding == "valid", layer.name
                padder = model.get_layer(parents(model, layer.name)[0])
                assert isinstance(padder, keras.layers.ZeroPadding2D)
                assert padder.padding == ((pad, pad), (pad, pad))


def test_names_are_the_presets_of_the_table():
    assert models.names() == [
        "resnet-20",
        "resnet-56",
        "resnet-110",
        "resnet-164",
        "preresnet-164",
        "wrn-28-10",
        "wrn-16-8",
        "wrn-16-4",
        "densenet-bc-100-12",
        "densenet-bc-190-40",
        "resnext-29-8x64d",
        "resnet-18",
        "simple-cnn",
        "simple-cnn-nobn",
        "mlp",
        "simple-cnn-1d",
        "mnist1d-mlp",
        "mnist1d-cnn",
    ]
    assert set(ACTIVATION_SITES) == set(models.names())


@pytest.mark.parametrize("name", models.names())
def test_preset_counts_sites_and_layers(name):
    model = preset_model(name)
    preset = models.get_preset(name)
    default_classes = min(preset["params"])
    assert trainable_count(model) == preset["params"][default_classes]
    assert model.output_shape == (None, default_classes)
    assert count(model, DropActivation) == ACTIVATION_SITES[name]
    assert all(
        layer.p == 0.95
        for layer in model.layers
        if isinstance(layer, DropActivation)
    )
    check_faithful_layers(model)


@pytest.mark.parametrize(
    "name", [n for n in models.names() if 100 in models.get_preset(n)["params"]]
)
def test_cifar100_trainable_count_is_exact(name):
    model = models.build(name, num_classes=100)
    assert trainable_count(model) == models.get_preset(name)["params"][100]
    assert model.output_shape == (None, 100)


@pytest.mark.parametrize("name", EMNIST)
def test_emnist_variant_changes_only_stem_and_head(name):
    model = models.build(name, num_classes=47, input_shape=(28, 28, 1))
    reference = preset_model(name)
    stem = reference.get_layer("stem_conv")
    features = reference.get_layer("logits").kernel.shape[0]
    expected = (
        models.get_preset(name)["params"][10]
        - 2 * 3 * 3 * stem.filters  # 2 fewer input channels.
        + 37 * (features + 1)  # 37 more classes.
    )
    assert model.output_shape == (None, 47)
    assert trainable_count(model) == expected


@pytest.mark.parametrize("name", PORTABLE)
def test_portable_build(name):
    model = preset_model(name)
    preset = models.get_preset(name)
    assert trainable_count(model) == preset["params"][min(preset["params"])]
    assert count(model, DropActivation) == ACTIVATION_SITES[name]
    check_faithful_layers(model)


@pytest.mark.parametrize("name", SMALL)
def test_portable_forward_pass(name):
    model = preset_model(name)
    x = sample_input(model)
    inference = keras.ops.convert_to_numpy(model(x, training=False))
    assert inference.shape == (2,) + model.output_shape[1:]
    assert np.all(np.isfinite(inference))
    np.testing.assert_array_equal(
        inference, keras.ops.convert_to_numpy(model(x, training=False))
    )
    training = keras.ops.convert_to_numpy(model(x, training=True))
    assert np.all(np.isfinite(training))
    assert not np.allclose(training, inference)


# --- layer order, strides and shapes (architectures.md item 10) ---------


def test_resnet110_basic_blocks_option_a():
    m = preset_model("resnet-110")
    assert parents(m, "stem_bn") == ["stem_conv"]
    assert parents(m, "stem_act") == ["stem_bn"]
    b = "stage2_block1"
    assert parents(m, f"{b}_conv1") == [f"{b}_conv1_pad"]
    assert parents(m, f"{b}_conv1_pad") == ["stage1_block18_out_act"]
    assert m.get_layer(f"{b}_conv1").strides == (2, 2)
    assert m.get_layer(f"{b}_conv2").strides == (1, 1)
    assert parents(m, f"{b}_act1") == [f"{b}_bn1"]
    assert parents(m, f"{b}_add") == [f"{b}_shortcut", f"{b}_bn2"]
    assert isinstance(m.get_layer(f"{b}_shortcut"), ZeroPadShortcut)
    assert parents(m, f"{b}_shortcut") == ["stage1_block18_out_act"]
    assert parents(m, f"{b}_out_act") == [f"{b}_add"]
    assert parents(m, "stage2_block2_add") == [
        f"{b}_out_act",
        "stage2_block2_bn2",
    ]
    assert out_shape(m, "stage1_block18_out_act") == (None, 32, 32, 16)
    assert out_shape(m, "stage2_block18_out_act") == (None, 16, 16, 32)
    assert out_shape(m, "stage3_block18_out_act") == (None, 8, 8, 64)
    # Option A everywhere: no 1x1 convolution at all.
    assert all(
        layer.kernel_size == (3, 3)
        for layer in m.layers
        if isinstance(layer, keras.layers.Conv2D)
    )


def test_resnet164_bottleneck_stride_and_stage1_projection():
    m = preset_model("resnet-164")
    b = "stage1_block1"
    assert m.get_layer(f"{b}_shortcut_conv").strides == (1, 1)
    assert parents(m, f"{b}_shortcut_bn") == [f"{b}_shortcut_conv"]
    assert parents(m, f"{b}_add") == [f"{b}_shortcut_bn", f"{b}_bn3"]
    assert parents(m, "stage1_block2_add") == [
        f"{b}_out_act",
        "stage1_block2_bn3",
    ]
    b = "stage3_block1"
    assert m.get_layer(f"{b}_conv1").strides == (1, 1)
    assert m.get_layer(f"{b}_conv2").strides == (2, 2)
    assert m.get_layer(f"{b}_shortcut_conv").strides == (2, 2)
    assert [m.get_layer(f"{b}_conv{i}").filters for i in (1, 2, 3)] == [
        64,
        64,
        256,
    ]
    assert out_shape(m, "stage3_block18_out_act") == (None, 8, 8, 256)
    names = {layer.name for layer in m.layers}
    assert "stage1_block2_shortcut_conv" not in names


def test_preresnet164_preactivation_order():
    m = preset_model("preresnet-164")
    b = "stage1_block1"
    assert parents(m, f"{b}_bn1") == ["stem_conv"]  # Nothing after the stem.
    assert parents(m, f"{b}_conv1") == [f"{b}_act1"]
    assert parents(m, f"{b}_shortcut_conv") == [f"{b}_act1"]  # Pre-activated.
    assert parents(m, f"{b}_add") == [f"{b}_shortcut_conv", f"{b}_conv3"]
    assert parents(m, "stage1_block2_add") == [
        f"{b}_add",
        "stage1_block2_conv3",
    ]
    assert m.get_layer("stage2_block1_conv2").strides == (2, 2)
    assert parents(m, "final_bn") == ["stage3_block18_add"]
    assert parents(m, "avg_pool") == ["final_act"]
    assert out_shape(m, "final_act") == (None, 8, 8, 256)
    assert count(m, keras.layers.BatchNormalization) == 3 * 54 + 1


def test_wrn28_10_dropout_between_convs_and_projections():
    m = preset_model("wrn-28-10")
    b = "stage1_block1"
    assert parents(m, f"{b}_bn1") == ["stem_conv"]
    assert parents(m, f"{b}_conv1") == [f"{b}_act1"]
    assert parents(m, f"{b}_dropout") == [f"{b}_act2"]
    assert parents(m, f"{b}_conv2") == [f"{b}_dropout"]
    assert m.get_layer(f"{b}_dropout").rate == 0.3
    assert parents(m, f"{b}_shortcut_conv") == [f"{b}_act1"]
    assert m.get_layer(f"{b}_shortcut_conv").filters == 160
    assert parents(m, "stage1_block2_add") == [
        f"{b}_add",
        "stage1_block2_conv2",
    ]
    assert m.get_layer("stage2_block1_conv1").strides == (2, 2)
    assert m.get_layer("stage2_block1_shortcut_conv").strides == (2, 2)
    assert out_shape(m, "final_act") == (None, 8, 8, 640)
    assert count(m, keras.layers.Dropout) == 12
    assert (
        count(models.build("wrn-16-4", dropout=0.0), keras.layers.Dropout) == 0
    )
    assert models.build("wrn-16-8").get_layer(f"{b}_dropout").rate == 0.4


def test_densenet_bc_100_12_widths_and_transitions():
    m = preset_model("densenet-bc-100-12")
    assert m.get_layer("stem_conv").filters == 24
    assert m.get_layer("block1_layer1_conv1").filters == 48
    assert parents(m, "block1_layer1_concat") == [
        "stem_conv",
        "block1_layer1_conv2",
    ]
    assert m.get_layer("transition1_conv").filters == 108  # floor(216 / 2)
    assert m.get_layer("transition2_conv").filters == 150  # floor(300 / 2)
    assert m.get_layer("transition1_pool").pool_size == (2, 2)
    assert parents(m, "transition1_bn") == ["block1_layer16_concat"]
    assert out_shape(m, "transition2_pool") == (None, 8, 8, 150)
    assert out_shape(m, "final_act") == (None, 8, 8, 342)
    assert parents(m, "avg_pool") == ["final_act"]


def test_resnext_grouped_convs_and_widths():
    m = preset_model("resnext-29-8x64d")
    assert parents(m, "stem_act") == ["stem_bn"]
    for s, (inner, width) in enumerate(
        [(512, 256), (1024, 512), (2048, 1024)], 1
    ):
        conv2 = m.get_layer(f"stage{s}_block1_conv2")
        assert (conv2.filters, conv2.groups) == (inner, 8)
        assert conv2.strides == ((2, 2) if s > 1 else (1, 1))
        assert m.get_layer(f"stage{s}_block1_shortcut_conv").filters == width
        assert m.get_layer(f"stage{s}_block3_conv3").filters == width
    assert out_shape(m, "stage3_block3_out_act") == (None, 8, 8, 1024)


def test_resnet18_cutout_variant_has_no_maxpool():
    m = preset_model("resnet-18")
    assert count(m, keras.layers.MaxPooling2D) == 0
    assert m.get_layer("stem_conv").strides == (1, 1)
    assert m.get_layer("stem_conv").kernel_size == (3, 3)
    names = {layer.name for layer in m.layers}
    assert "stage1_block1_shortcut_conv" not in names
    for s, size in zip((2, 3, 4), (16, 8, 4)):
        assert m.get_layer(f"stage{s}_block1_shortcut_conv").strides == (2, 2)
        assert out_shape(m, f"stage{s}_block2_out_act")[1:3] == (size, size)


def test_simple_cnn_and_mlp_layers():
    m = preset_model("simple-cnn")
    kinds = [type(layer).__name__ for layer in m.layers[1:]]
    block = [
        "Conv2D",
        "BatchNormalization",
        "DropActivation",
        "AveragePooling2D",
    ]
    assert kinds == 3 * block + ["Flatten", "Dense", "DropActivation", "Dense"]
    assert out_shape(m, "block3_pool") == (None, 4, 4, 128)
    assert not any(layer.use_bias for layer in m.layers if isinstance(layer, keras.layers.Conv2D))
    m = preset_model("simple-cnn-nobn")
    kinds = [type(layer).__name__ for layer in m.layers[1:]]
    assert kinds == 3 * ["Conv2D", "DropActivation", "AveragePooling2D"] + [
        "Flatten", "Dense", "DropActivation", "Dense"]
    assert all(layer.use_bias for layer in m.layers if isinstance(layer, keras.layers.Conv2D))
    assert out_shape(m, "block3_pool") == (None, 4, 4, 128)
    m = preset_model("mlp")
    assert m.input_shape == (None, 1)
    assert [
        layer.units
        for layer in m.layers
        if isinstance(layer, keras.layers.Dense)
    ] == [
        1000,
        800,
        200,
        1,
    ]


def test_mnist1d_reference_networks_have_the_reference_counts():
    # MNIST-1D's notebooks/models.py, counted by hand (weights + biases).
    mlp_count = (40 * 100 + 100) + (100 * 100 + 100) + (100 * 10 + 10)
    assert mlp_count == 15_210  # "Initialized MLPBase model with 15210 parameters"
    lengths = [40]
    for kernel in (5, 3, 3):  # stride 2, padding 1
        lengths.append((lengths[-1] + 2 - kernel) // 2 + 1)
    assert lengths == [40, 19, 10, 5]
    cnn_count = (1 * 5 * 25 + 25) + 2 * (25 * 3 * 25 + 25) + (5 * 25 * 10 + 10)
    assert cnn_count == 5_210  # "Initialized ConvBase model with 5210 parameters"
    fig2_count = (3 * 1 * 32 + 3 * 32 * 64 + 3 * 64 * 128  # bias-free convolutions
                  + 2 * (32 + 64 + 128)  # BatchNorm gamma and beta
                  + 5 * 128 * 256 + 256 + 256 * 10 + 10)  # 40 -> 20 -> 10 -> 5 samples
    assert fig2_count == 197_930
    for name, expected in [("mnist1d-mlp", mlp_count), ("mnist1d-cnn", cnn_count),
                           ("simple-cnn-1d", fig2_count)]:
        model = preset_model(name)
        assert model.input_shape == (None, 40, 1)
        assert trainable_count(model) == expected == models.get_preset(name)["params"][10], name
    cnn = preset_model("mnist1d-cnn")
    assert [out_shape(cnn, f"conv{i}")[1:] for i in (1, 2, 3)] == [(19, 25), (10, 25), (5, 25)]
    assert [cnn.get_layer(f"conv{i}").kernel_size for i in (1, 2, 3)] == [(5,), (3,), (3,)]
    assert all(cnn.get_layer(f"conv{i}_pad").padding == (1, 1) for i in (1, 2, 3))
    assert out_shape(preset_model("simple-cnn-1d"), "block3_pool") == (None, 5, 128)


def test_portable_mnist1d_mlp_second_layer_is_residual():
    # h = act(fc1(x)); h = h + act(fc2(h)): with fc2 zeroed, ReLU gives
    # logits(h) exactly as without the second layer.
    model = models.build("mnist1d-mlp", activation="relu", seed=0)
    fc2 = model.get_layer("fc2")
    fc2.set_weights([np.zeros_like(w) for w in fc2.get_weights()])
    x = sample_input(model, batch=4)
    fc1, logits = ([keras.ops.convert_to_numpy(w) for w in model.get_layer(n).weights]
                   for n in ("fc1", "logits"))
    h = np.maximum(x.reshape(4, 40) @ fc1[0] + fc1[1], 0.0)
    expected = h @ logits[0] + logits[1]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, rtol=1e-5, atol=1e-5)


def test_portable_mnist1d_reference_init_is_pytorchs_uniform():
    # nn.Linear / nn.Conv1d: weights and biases uniform in +-1/sqrt(fan_in).
    model = models.build("mnist1d-cnn", seed=0)
    for name, fan_in in [("conv1", 1 * 5), ("conv2", 25 * 3), ("logits", 125)]:
        layer = model.get_layer(name)
        bound = 1 / math.sqrt(fan_in)
        for weights in (layer.kernel, layer.bias):
            values = keras.ops.convert_to_numpy(weights)
            assert np.abs(values).max() <= bound
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        assert np.abs(kernel).max() > 0.8 * bound  # Spread over the interval, not tiny.


# --- factory arguments ---------------------------------------------------


def test_portable_strided_conv_pads_like_pytorch():
    # A 3x3 stride-2 conv of ones on a 4x4 image of ones: PyTorch's padding=1
    # covers 2x2, 2x3, 3x2 and 3x3 pixels; Keras' "same" would give 9,6,6,4.
    inputs = keras.Input((4, 4, 1))
    outputs = LayerFactory("relu").conv(inputs, 1, 3, strides=2, name="conv")
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").kernel.assign(np.ones((3, 3, 1, 1), "float32"))
    y = keras.ops.convert_to_numpy(model(np.ones((1, 4, 4, 1), "float32")))
    np.testing.assert_array_equal(y[0, :, :, 0], [[4.0, 6.0], [6.0, 9.0]])


def test_portable_zero_pad_shortcut_subsamples_and_pads():
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    y = keras.ops.convert_to_numpy(ZeroPadShortcut(5, 2)(x))
    assert y.shape == (2, 2, 2, 5)
    np.testing.assert_array_equal(y[..., :3], x[:, ::2, ::2, :])
    np.testing.assert_array_equal(y[..., 3:], 0.0)


def test_activation_choices():
    assert isinstance(activation_layer("dropact", 0.9), DropActivation)
    assert isinstance(activation_layer("relu"), keras.layers.ReLU)
    assert isinstance(activation_layer("rrelu", seed=1), RandomizedReLU)
    leaky = activation_layer("leaky_relu", 0.95)
    assert isinstance(leaky, keras.layers.LeakyReLU)
    assert math.isclose(leaky.negative_slope, 0.05)
    assert isinstance(
        activation_layer(keras.layers.ELU), keras.layers.ELU
    )
    with pytest.raises(
        ValueError, match="'dropact', 'relu', 'rrelu', 'leaky_relu'"
    ):
        activation_layer("swish")
    with pytest.raises(ValueError, match="must return a new"):
        activation_layer(lambda: "relu")
    with pytest.raises(ValueError, match="called with no argument"):
        activation_layer(keras.activations.gelu)
    with pytest.raises(ValueError, match="p"):
        activation_layer("leaky_relu", 1.5)


def test_portable_seeded_factory_builds_a_gelu_drop_activation_network():
    # timm-style act_layer: a factory that takes `seed` gets seed + site.
    factory = functools.partial(DropActivation, p=0.9, activation="gelu")
    model = models.build("simple-cnn", activation=factory, seed=7)
    layers = [l for l in model.layers if isinstance(l, DropActivation)]
    assert len(layers) == ACTIVATION_SITES["simple-cnn"]
    assert [l.seed for l in layers] == list(range(7, 7 + len(layers)))
    assert {(l.activation, l.p) for l in layers} == {("gelu", 0.9)}
    assert [l.name for l in layers][:2] == ["block1_act", "block2_act"]
    with pytest.raises(ValueError, match="act_layer"):
        models.build("simple-cnn", act_layer=factory)


@pytest.mark.parametrize(
    "activation, cls",
    [
        ("relu", keras.layers.ReLU),
        ("rrelu", RandomizedReLU),
        ("leaky_relu", keras.layers.LeakyReLU),
        (keras.layers.ELU, keras.layers.ELU),
    ],
)
def test_portable_every_site_gets_the_activation(activation, cls):
    model = models.build("resnet-20", activation=activation)
    assert count(model, cls) == ACTIVATION_SITES["resnet-20"]
    assert count(model, DropActivation) == 0


def test_invalid_depths_names_and_overrides_raise():
    with pytest.raises(
        ValueError, match=r"Wide ResNet: 20\. .*6n \+ 4 .*\(10, 16, 22"
    ):
        models.build("wrn-28-10", depth=20)
    with pytest.raises(ValueError, match=r"depth.*6n \+ 2"):
        models.cifar_resnet(100)
    with pytest.raises(ValueError, match=r"9n \+ 2"):
        models.preresnet(100)
    with pytest.raises(ValueError, match=r"6n \+ 4"):
        models.densenet_bc(101, 12)
    with pytest.raises(ValueError, match="resnet-110.*wrn-28-10"):
        models.build("wrn-20-10")
    with pytest.raises(ValueError, match="growth_rate"):
        models.build("resnet-20", growth_rate=12)
    with pytest.raises(ValueError, match="'basic', 'bottleneck'"):
        models.build("resnet-20", block="wide")
    with pytest.raises(ValueError, match="dropout"):
        models.build("wrn-16-4", dropout=1.0)
    with pytest.raises(ValueError, match="'swish'. Expected one of 'dropact'"):
        models.build("resnet-20", activation="swish")


def test_portable_seed_makes_training_reproducible():
    model = models.build("wrn-16-4", seed=10, dropout=0.3)
    seeds = [
        layer.seed
        for layer in model.layers
        if isinstance(layer, (DropActivation, keras.layers.Dropout))
    ]
    assert sorted(seeds) == list(range(10, 10 + 13 + 6))
    a = models.build("resnet-20", seed=3)
    b = models.build("resnet-20", seed=3)
    b.set_weights(a.get_weights())
    x = sample_input(a)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(a(x, training=True)),
        keras.ops.convert_to_numpy(b(x, training=True)),
    )


def test_portable_weight_decay_is_pytorch_l2():
    wd = 5e-4
    model = models.build("resnet-20", weight_decay=wd)
    x = sample_input(model)
    model(x, training=False)
    weights = model.trainable_weights
    assert all(w.regularizer is not None for w in weights)
    squares = sum(
        float(np.sum(keras.ops.convert_to_numpy(w).astype("float64") ** 2))
        for w in weights
    )
    added = sum(
        float(keras.ops.convert_to_numpy(loss)) for loss in model.losses
    )
    assert len(model.losses) == len(weights)
    assert math.isclose(added, wd / 2 * squares, rel_tol=1e-5)
    assert models.build("resnet-20").losses == []


@pytest.mark.parametrize(
    "activation, overrides",
    [("relu", {}), ("dropact", {"seed": 1, "weight_decay": 1e-4})],
)
def test_portable_keras_round_trip(tmp_path, activation, overrides):
    model = models.build("resnet-20", activation=activation, **overrides)
    x = sample_input(model)
    # BN statistics unlike their initial values, so that losing them shows.
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(size=shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=shape))
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [
        type(layer) for layer in model.layers
    ]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        sum(float(keras.ops.convert_to_numpy(v)) for v in loaded.losses),
        sum(float(keras.ops.convert_to_numpy(v)) for v in model.losses),
        rtol=1e-6,
    )
