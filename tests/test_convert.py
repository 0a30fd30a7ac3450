"""keras_dropact.convert: ReLUs of existing models become Drop-Activations.

Backend-neutral: also run with KERAS_BACKEND=jax or torch.
"""

import numpy as np
import pytest

import keras

from keras_dropact import DropActivation
from keras_dropact import convert
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
