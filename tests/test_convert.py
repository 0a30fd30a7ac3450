"""keras_dropact.convert: ReLUs of existing models become Drop-Activations.

Backend-neutral: also run with KERAS_BACKEND=jax or torch.
"""

import re

import numpy as np
import pytest

import keras

from keras_dropact import DropActivation
from keras_dropact import convert
from keras_dropact.convert import activation_sites
from tests.conftest import assert_same_weights


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def count(model, cls):
    return sum(isinstance(layer, cls) for layer in model.layers)


def relu_layers(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.ReLU)
        or (
            isinstance(layer, keras.layers.Activation)
            and layer.activation is keras.activations.relu
        )
    ]


@pytest.fixture(scope="module")
def resnet50():
    return keras.applications.ResNet50(
        weights=None, input_shape=(32, 32, 3), classes=10
    )


def test_resnet50_with_p_1_equals_the_original(resnet50):
    converted = convert(resnet50, p=1.0)
    relus = relu_layers(resnet50)
    assert len(relus) == 49
    assert count(converted, DropActivation) == 49
    assert relu_layers(converted) == []
    for relu in relus:  # Same names, now Drop-Activations.
        assert isinstance(converted.get_layer(relu.name), DropActivation)
    # The output softmax is no ReLU: kept.
    assert converted.layers[-1].activation is keras.activations.softmax
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        numpy(converted(x, training=False)),
        numpy(resnet50(x, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_converted_copy_shares_no_variable(resnet50):
    converted = convert(resnet50, p=0.95)
    original_ids = {id(v) for v in resnet50.weights}
    assert not original_ids & {id(v) for v in converted.weights}
    assert len(converted.trainable_weights) == len(resnet50.trainable_weights)
    assert_same_weights(converted.weights, resnet50.weights)
    assert len(relu_layers(resnet50)) == 49  # The original is untouched.
    assert all(
        layer.p == 0.95
        for layer in converted.layers
        if isinstance(layer, DropActivation)
    )


def sequential_with_fused_relus():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((8, 8, 2)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(6, activation="relu", name="hidden"),
            keras.layers.Activation("relu", name="act"),
            keras.layers.Dense(3, name="out"),
        ],
        name="small",
    )


def test_sequential_fused_activations_are_split():
    model = sequential_with_fused_relus()
    converted = convert(model, p=1.0)
    assert isinstance(converted, keras.Sequential)
    assert [layer.name for layer in converted.layers] == [
        "conv",
        "conv_dropact",
        "bn",
        "relu",
        "flatten",
        "hidden",
        "hidden_dropact",
        "act",
        "out",
    ]
    assert converted.get_layer("conv").activation is keras.activations.linear
    assert count(converted, DropActivation) == 4
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 2)).astype("float32")
    np.testing.assert_allclose(
        numpy(converted(x, training=False)),
        numpy(model(x, training=False)),
        rtol=1e-6,
        atol=1e-6,
    )


def test_inference_is_leaky_relu_with_slope_1_minus_p():
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(7, activation="relu"),
            keras.layers.Dense(2),
        ]
    )
    converted = convert(model, p=0.9)
    x = np.random.default_rng(1).normal(size=(3, 5)).astype("float32")
    w1, b1, w2, b2 = (numpy(w) for w in model.weights)
    h = x @ w1 + b1
    expected = np.where(h > 0, h, 0.1 * h) @ w2 + b2  # Paper eq. 5.
    np.testing.assert_allclose(
        numpy(converted(x)), expected, rtol=1e-5, atol=1e-6
    )
    training = numpy(converted(x, training=True))
    assert not np.allclose(training, numpy(converted(x)))


def test_nested_models_and_other_activations():
    inner = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(4, activation="gelu", name="inner_dense"),
        ],
        name="inner",
    )
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, activation="relu", name="first")(inputs)
    x = inner(x)
    x = keras.layers.Activation("gelu", name="gelu")(x)
    x = keras.layers.ReLU(max_value=6.0, name="relu6")(x)  # Not a plain ReLU.
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(x))

    gelu_only = convert(model, p=1.0, activation="gelu")
    assert isinstance(gelu_only.get_layer("gelu"), DropActivation)
    assert gelu_only.get_layer("gelu").activation == "gelu"
    assert gelu_only.get_layer("first").activation is keras.activations.relu
    nested = gelu_only.get_layer("inner")
    assert [layer.name for layer in nested.layers] == [
        "inner_dense",
        "inner_dense_dropact",
    ]

    both = convert(model, p=1.0, activation=["relu", "gelu"], seed=5)
    dropacts = [
        layer
        for layer in both.layers + both.get_layer("inner").layers
        if isinstance(layer, DropActivation)
    ]
    assert sorted(layer.seed for layer in dropacts) == [5, 6, 7]
    assert isinstance(both.get_layer("relu6"), keras.layers.ReLU)
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(
        numpy(both(x)), numpy(model(x)), rtol=1e-5, atol=1e-6
    )


def test_round_trip_of_a_converted_model(tmp_path):
    converted = convert(sequential_with_fused_relus(), p=0.95, seed=0)
    path = str(tmp_path / "converted.keras")
    converted.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 2)).astype("float32")
    np.testing.assert_allclose(
        numpy(loaded(x)), numpy(converted(x)), rtol=1e-6, atol=1e-6
    )


def test_errors():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, activation="tanh")]
    )
    with pytest.raises(ValueError, match="found no activation 'relu'"):
        convert(model)
    with pytest.raises(ValueError, match="Expected a number in"):
        convert(model, p=0.0, activation="tanh")

    class Subclassed(keras.Model):
        def call(self, x):
            return keras.ops.relu(x)

    with pytest.raises(ValueError, match="subclassed"):
        convert(Subclassed())
    softmax = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, activation="softmax")]
    )
    with pytest.raises(ValueError, match="not an elementwise"):
        convert(softmax, activation="softmax")


# ------------------------------------------- keras.applications, names, ReLU6


def drop_activations(model):
    return [layer for layer in model.layers if isinstance(layer, DropActivation)]


def assert_same_inference(converted, model, x):
    np.testing.assert_allclose(
        numpy(converted(x, training=False)),
        numpy(model(x, training=False)),
        rtol=1e-5,
        atol=1e-6,
    )


IMAGES = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")

# Building these keras.applications models on JAX compiles every initializer
# and the first call every op (about a minute on 2 cores): they run on
# TensorFlow. What they check does not depend on the backend; the layers of
# ReLU6, ReLU variants and SiLU are checked on every backend by the small
# models below and tests/test_layers.py.
applications_on_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="keras.applications models cost about a minute of XLA compilation on JAX",
)


@pytest.fixture(scope="module")
def mobilenet_v2():
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(
        weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=10
    )


@applications_on_tensorflow
def test_mobilenet_v2_relu6_converts_with_relu6_only(mobilenet_v2):
    # Its nonlinearities are ReLU(max_value=6): "relu" (max(x, 0)) does not
    # name them; "relu6", as Keras names that function, does.
    assert activation_sites(mobilenet_v2) == {"relu6": 35}
    with pytest.raises(ValueError, match=r"no activation 'relu' .*it has relu6 x35\.$"):
        convert(mobilenet_v2)
    converted = convert(mobilenet_v2, p=1.0, activation="relu6")
    assert activation_sites(converted) == {}
    assert [layer.activation for layer in drop_activations(converted)] == ["relu6"] * 35
    assert isinstance(converted.get_layer("Conv1_relu"), DropActivation)
    assert_same_inference(converted, mobilenet_v2, IMAGES)


@applications_on_tensorflow
def test_converted_relu6_follows_eq_3_in_training_and_eq_5_in_inference(mobilenet_v2):
    layer = convert(mobilenet_v2, p=0.9, activation="relu6", seed=0).get_layer("Conv1_relu")
    assert (layer.p, layer.activation, layer.seed) == (0.9, "relu6", 0)
    x = np.random.default_rng(1).uniform(-4, 10, size=(100, 1000)).astype("float32")
    relu6 = np.clip(x, 0, 6)
    y = numpy(layer(x, training=True))
    differs = relu6 != x  # x < 0 or x > 6: 4/7 of the elements.
    dropped = differs & (y == x)
    assert np.all(dropped | (y == relu6))  # Eq. 3: f(x) or x per element.
    n = differs.sum()
    assert abs(dropped.sum() / n - 0.1) < 5 * np.sqrt(0.09 / n)  # 5 sigma.
    np.testing.assert_allclose(numpy(layer(x)), 0.1 * x + 0.9 * relu6, rtol=1e-6, atol=1e-6)


@applications_on_tensorflow
def test_efficientnet_b0_converts_with_swish_as_silu():
    model = keras.applications.EfficientNetB0(
        weights=None, input_shape=(32, 32, 3), classes=10
    )
    # Built with activation="swish", which Keras resolves to silu: 33
    # Activation layers and 16 squeeze-excite convolutions with it fused.
    assert activation_sites(model) == {"sigmoid": 16, "silu": 49}
    converted = convert(model, activation="swish")
    assert activation_sites(converted) == {"sigmoid": 16}
    assert {layer.activation for layer in drop_activations(converted)} == {"silu"}
    assert len(drop_activations(converted)) == 49
    assert isinstance(converted.get_layer("block1a_activation"), DropActivation)
    assert isinstance(converted.get_layer("block1a_se_reduce_dropact"), DropActivation)
    assert converted.get_layer("block1a_se_reduce").activation is keras.activations.linear
    # p=1 inference equal to the original's: test_names_resolve_as_keras_resolves_them.


@pytest.mark.parametrize("name", ["swish", "silu"])
def test_names_resolve_as_keras_resolves_them(name):
    inputs = keras.Input((4,))
    x = keras.layers.Dense(4, activation="swish", name="by_alias")(inputs)
    x = keras.layers.Dense(4, activation=keras.activations.silu, name="by_function")(x)
    x = keras.layers.Conv1D(4, 1, activation=keras.ops.silu, name="by_op")(x[..., None])
    x = keras.layers.Activation("silu", name="by_name")(x)
    model = keras.Model(inputs, x)
    assert activation_sites(model) == {"silu": 4}
    converted = convert(model, p=1.0, activation=name)
    assert [layer.name for layer in drop_activations(converted)] == [
        "by_alias_dropact",
        "by_function_dropact",
        "by_op_dropact",
        "by_name",
    ]
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    assert_same_inference(converted, model, x)
    # A lambda has no name Keras could save: it is no site.
    lambda_model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4, activation=lambda t: t * keras.ops.sigmoid(t))]
    )
    assert activation_sites(lambda_model) == {}


@pytest.mark.parametrize("name", ["swissh", "softmax", 3])
def test_unknown_name_fails_in_one_line_with_the_choices(name):
    with pytest.raises(ValueError) as error:
        convert(relu_variants_model(), activation=["relu6", name])
    message = str(error.value)
    assert "\n" not in message
    assert f"{name!r} is not an elementwise Keras activation" in message
    assert "Expected one of celu, elu," in message and "swish, tanh" in message


def relu_variants_model():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8, name="d1")(inputs)
    x = keras.layers.ReLU(max_value=3.0, negative_slope=0.1, threshold=0.5, name="variant")(x)
    x = keras.layers.Dense(8, name="d2")(x)
    x = keras.layers.ReLU(6.0, name="six")(x)
    x = keras.layers.Dense(8, activation="relu", name="d3")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(x))


def test_relu_matches_parameterised_relus_only_with_relu_variants():
    model = relu_variants_model()
    variant = "ReLU(max_value=3.0, negative_slope=0.1, threshold=0.5)"
    assert activation_sites(model) == {variant: 1, "relu": 1, "relu6": 1}
    plain = convert(model, p=1.0)  # max(x, 0) only: the fused one.
    assert [layer.name for layer in drop_activations(plain)] == ["d3_dropact"]
    with pytest.raises(ValueError, match=rf"it has {re.escape(variant)} x1, relu x1, relu6 x1 \(ReLU variants: relu_variants=True\)"):
        convert(model, activation="gelu")
    with pytest.raises(ValueError, match="`relu_variants=True` extends the activation 'relu'"):
        convert(model, activation="relu6", relu_variants=True)
    every = convert(model, p=1.0, relu_variants=True)
    layers = {layer.name: layer for layer in drop_activations(every)}
    assert sorted(layers) == ["d3_dropact", "six", "variant"]
    assert layers["six"].activation == "relu6"
    assert layers["variant"].get_config()["activation"]["config"] == {
        "max_value": 3.0,
        "negative_slope": 0.1,
        "threshold": 0.5,
    }
    x = np.random.default_rng(0).normal(scale=3, size=(64, 6)).astype("float32")
    assert_same_inference(every, model, x)


def test_converted_relu_variants_save_and_load(tmp_path):
    # The fresh-process load of a ReLUVariant: tests/test_layers.py.
    converted = convert(relu_variants_model(), p=0.8, seed=0, relu_variants=True)
    converted.save(tmp_path / "converted.keras")
    loaded = keras.saving.load_model(tmp_path / "converted.keras")
    assert loaded.get_layer("variant").get_config() == converted.get_layer("variant").get_config()
    x = np.random.default_rng(0).normal(scale=3, size=(16, 6)).astype("float32")
    np.testing.assert_allclose(numpy(loaded(x)), numpy(converted(x)), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ keras-hub


def tiny_resnet_classifier(keras_hub):
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(32, 32, 3),
    )
    converter = keras_hub.layers.ResNetImageConverter(image_size=(32, 32), scale=1 / 255)
    preprocessor = keras_hub.models.ResNetImageClassifierPreprocessor(converter)
    return keras_hub.models.ResNetImageClassifier(
        backbone=backbone, num_classes=4, preprocessor=preprocessor
    )


def test_keras_hub_task_keeps_its_class_preprocessor_and_presets(tmp_path):
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not a dependency: tested where installed")
    keras.utils.set_random_seed(0)
    task = tiny_resnet_classifier(keras_hub)
    assert activation_sites(task) == {"relu": 5}
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 40, 40, 3)).astype("float32")
    expected = task.predict(images, verbose=0)
    same = convert(task, p=1.0)
    assert type(same) is type(task) and same.preprocessor is task.preprocessor
    assert len(drop_activations(same.backbone)) == 5
    np.testing.assert_allclose(same.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-6)
    # A backbone alone comes back as a plain functional model; the task is
    # rebuilt around it as docs/reference/convert.md says.
    backbone = convert(task.backbone, p=1.0)
    assert type(backbone).__name__ == "Functional"
    rebuilt = keras_hub.models.ImageClassifier(
        backbone=backbone, num_classes=task.num_classes, preprocessor=task.preprocessor
    )
    rebuilt.get_layer("predictions").set_weights(task.get_layer("predictions").get_weights())
    np.testing.assert_allclose(rebuilt.predict(images, verbose=0), expected, rtol=1e-5, atol=1e-6)
    converted = convert(task, p=0.9, seed=0)
    converted.save_to_preset(str(tmp_path / "preset"))
    converted.save(tmp_path / "task.keras")
    expected = converted.predict(images, verbose=0)
    for loaded in (
        keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "preset")),
        keras.saving.load_model(tmp_path / "task.keras"),
    ):
        assert type(loaded) is type(task)
        assert len(drop_activations(loaded.backbone)) == 5
        np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, rtol=1e-6, atol=1e-6)


def test_keras_hub_task_that_needs_its_backbone_class_fails_in_one_line():
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not a dependency: tested where installed")

    class NeedsResNetBackbone(keras_hub.models.ResNetImageClassifier):
        def __init__(self, backbone, **kwargs):
            assert backbone.stackwise_num_filters  # Only a ResNetBackbone has it.
            super().__init__(backbone=backbone, **kwargs)

    task = tiny_resnet_classifier(keras_hub)
    task = NeedsResNetBackbone(backbone=task.backbone, num_classes=4)
    with pytest.raises(ValueError, match=r"could not rebuild the keras-hub task NeedsResNetBackbone .*convert `task.backbone`"):
        convert(task)


def _with_trained_values(model, seed):
    """`model` with every weight set away from its initial value, as after
    training: BatchNorm's gamma, beta, moving mean and variance included
    (freshly built, they equal Keras' defaults, so a copy that skipped them
    would pass unnoticed)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype(weight.dtype))
    return model


def _functional_with_batch_norm():
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.BatchNormalization(name="bn_flat")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(x))


@pytest.mark.parametrize("build", [_functional_with_batch_norm, sequential_with_fused_relus])
def test_batch_norm_statistics_and_weights_are_copied(build):
    model = _with_trained_values(build(), seed=3)
    converted = convert(model, p=1.0)
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batch_norms
    for layer in batch_norms:
        assert len(layer.weights) == 4  # gamma, beta, moving mean and variance
        assert_same_weights(converted.get_layer(layer.name).weights, layer.weights)
    assert_same_weights(converted.weights, model.weights)
    x = np.random.default_rng(0).normal(size=(4, *model.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(
        numpy(converted(x, training=False)), numpy(model(x, training=False)), rtol=1e-5, atol=1e-5
    )
