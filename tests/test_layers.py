"""Behaviour of DropActivation and RandomizedReLU on every Keras backend.

Run on TensorFlow by default and, in CI, again with KERAS_BACKEND=jax and
KERAS_BACKEND=torch. TensorFlow-only checks (tf.function, tf.distribute,
SavedModel) are marked and skipped on the other backends.
"""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import ops

from keras_dropact import DropActivation
from keras_dropact import RandomizedReLU
from keras_dropact.layers import ReLUVariant
from tests.conftest import BACKEND
from tests.conftest import tensorflow_only
from tests.conftest import value_and_grad

P = 0.95


def to_numpy(x):
    return ops.convert_to_numpy(x)


def kept_fraction(layer, shape, seed_calls=1):
    """Fraction of elements of an all-negative input whose ReLU was kept."""
    x = -np.ones(shape, "float32")
    y = to_numpy(layer(x, training=True))
    assert set(np.unique(y)) <= {0.0, -1.0}, "output must be relu(x)=0 or x=-1"
    return y == 0.0


# ---------------------------------------------------------------- statistics


@pytest.mark.parametrize("sampler", ["auto", "bits", "bytes"])
@pytest.mark.parametrize("p", [0.6, 0.95])
def test_keep_rate_within_binomial_bound(p, sampler):
    n = 1_000_000
    kept = kept_fraction(DropActivation(p=p, seed=1, sampler=sampler), (1000, 1000))
    sigma = np.sqrt(p * (1 - p) / n)
    # 5 sigma: a correct sampler fails this about once in 1.7 million seeds.
    assert abs(kept.mean() - p) < 5 * sigma


def test_mask_is_fresh_each_call_and_differs_between_examples():
    layer = DropActivation(p=0.5, seed=3)
    first = kept_fraction(layer, (4, 256))
    second = kept_fraction(layer, (4, 256))
    assert not np.array_equal(first, second)
    # Examples of one batch get independent masks: rows agree at about half
    # of the positions (P(agree) = p^2 + (1-p)^2 = 0.5), never at all of them.
    for i in range(1, 4):
        agreement = np.mean(first[0] == first[i])
        assert 0.35 < agreement < 0.65


@pytest.mark.parametrize("sampler", ["bits", "bytes"])
def test_same_seed_gives_same_masks_different_seed_does_not(sampler):
    a, b, c = (DropActivation(p=0.5, seed=s, sampler=sampler) for s in (7, 7, 8))
    masks_a = [kept_fraction(a, (64, 64)) for _ in range(2)]
    masks_b = [kept_fraction(b, (64, 64)) for _ in range(2)]
    np.testing.assert_array_equal(masks_a[0], masks_b[0])
    np.testing.assert_array_equal(masks_a[1], masks_b[1])
    assert not np.array_equal(masks_a[0], kept_fraction(c, (64, 64)))


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_mean_of_training_outputs_approaches_inference_output(activation):
    # E_P[x + P (f(x) - x)] = (1 - p) x + p f(x)  (paper eq. 5).
    layer = DropActivation(p=0.7, activation=activation, seed=11)
    x = np.linspace(-3, 3, 64, dtype="float32")[None]
    batch = np.repeat(x, 4000, axis=0)
    mean = to_numpy(layer(batch, training=True)).mean(axis=0)
    expected = to_numpy(layer(x, training=False))[0]
    # Per element the mean of 4000 draws has sd sqrt(p(1-p)/4000)*|f(x)-x|
    # <= 0.0073 * 3; 0.06 is about 3 sd at the largest |x|.
    np.testing.assert_allclose(mean, expected, atol=0.06)


# ------------------------------------------------------------ deterministic


def test_inference_is_exactly_leaky_relu():
    x = np.random.default_rng(0).normal(size=(8, 16)).astype("float32")
    layer = DropActivation(p=P)
    expected = to_numpy(ops.leaky_relu(x, negative_slope=1 - P))
    np.testing.assert_array_equal(to_numpy(layer(x)), expected)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), expected)


def test_inference_of_other_activation_is_the_convex_combination():
    x = np.linspace(-4, 4, 33, dtype="float32")
    layer = DropActivation(p=0.8, activation="gelu")
    gelu = to_numpy(keras.activations.gelu(x))
    np.testing.assert_allclose(to_numpy(layer(x)), 0.2 * x + 0.8 * gelu, rtol=1e-6, atol=1e-6)


def test_p_equal_one_is_the_plain_activation_in_both_modes():
    x = np.linspace(-2, 2, 9, dtype="float32")
    layer = DropActivation(p=1, activation="silu")
    expected = to_numpy(keras.activations.silu(x))
    np.testing.assert_allclose(to_numpy(layer(x, training=True)), expected, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-6)
    assert not hasattr(layer, "seed_generator")


@pytest.mark.parametrize(
    "activation, relu_arguments",
    [("relu6", (6.0, 0.0, 0.0)), (ReLUVariant(3.0, 0.1, 0.5), (3.0, 0.1, 0.5))],
    ids=["relu6", "relu-variant"],
)
def test_parameterised_relus_follow_eq_3_and_eq_5(activation, relu_arguments):
    # f is exactly what keras.layers.ReLU(max_value, negative_slope,
    # threshold) computes; Drop-Activation of it keeps f or the identity per
    # element in training (eq. 3) and averages them in inference (eq. 5).
    p = 0.9
    layer = DropActivation(p=p, activation=activation, seed=6)
    x = np.random.default_rng(4).uniform(-4, 8, size=(400, 500)).astype("float32")
    f = to_numpy(keras.layers.ReLU(*relu_arguments)(x))
    y = to_numpy(layer(x, training=True))
    differs = f != x
    dropped = (y == x) & differs
    assert np.all(dropped | (y == f))
    n = differs.sum()  # About 3/4 of the 200k elements.
    # 5 sigma of a Binomial(n, 1 - p) fraction.
    assert abs(dropped.sum() / n - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(
        to_numpy(layer(x)), (1 - p) * x + p * f, rtol=1e-6, atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs", [{"max_value": -1.0}, {"negative_slope": None}, {"threshold": "0"}]
)
def test_relu_variant_rejects_arguments_keras_relu_rejects(kwargs):
    with pytest.raises(ValueError, match=f"`{next(iter(kwargs))}`.*>= 0"):
        ReLUVariant(**kwargs)


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_gradient_is_f_prime_where_kept_and_one_where_dropped(activation):
    layer = DropActivation(p=0.5, activation=activation, seed=5)
    x = np.random.default_rng(1).uniform(-3, -0.1, size=(32, 32)).astype("float32")
    y, grad = value_and_grad(lambda t: layer(t, training=True), x)
    dropped = np.isclose(y, x, rtol=0, atol=0)
    assert 0.3 < dropped.mean() < 0.7
    if activation == "relu":
        f_prime = np.zeros_like(x)
    else:
        s = 1 / (1 + np.exp(-x))
        f_prime = s * (1 - s)
    np.testing.assert_allclose(grad[dropped], 1.0)
    np.testing.assert_allclose(grad[~dropped], f_prime[~dropped], rtol=1e-5, atol=1e-7)


def test_randomized_relu_gradient_is_its_slope():
    layer = RandomizedReLU(seed=2)
    x = np.random.default_rng(2).uniform(-2, 2, size=(16, 16)).astype("float32")
    y, grad = value_and_grad(lambda t: layer(t, training=True), x)
    negative = x < 0
    np.testing.assert_allclose(grad[~negative], 1.0)
    np.testing.assert_allclose(grad[negative], y[negative] / x[negative], rtol=1e-5)


# ------------------------------------------------------------- RandomizedReLU


def test_randomized_relu_slopes_are_uniform_per_element():
    layer = RandomizedReLU(lower=0.125, upper=1 / 3, seed=4)
    x = -np.ones((500, 400), "float32")
    slopes = -to_numpy(layer(x, training=True))
    assert slopes.min() >= 0.125 and slopes.max() <= 1 / 3 + 1e-7
    # Mean of 200k U(a, b) draws: sd (b-a)/sqrt(12 n) = 1.3e-4; allow 5 sd.
    assert abs(slopes.mean() - 11 / 48) < 7e-4
    # Roughly flat histogram: each of 4 bins holds 25% +- 1%.
    counts, _ = np.histogram(slopes, bins=4, range=(0.125, 1 / 3))
    np.testing.assert_allclose(counts / slopes.size, 0.25, atol=0.01)
    assert not np.array_equal(slopes, -to_numpy(layer(x, training=True)))


def test_randomized_relu_inference_uses_the_mean_slope():
    x = np.linspace(-3, 3, 13, dtype="float32")
    expected = to_numpy(ops.leaky_relu(x, negative_slope=11 / 48))
    np.testing.assert_allclose(to_numpy(RandomizedReLU()(x)), expected, rtol=1e-6)


# ------------------------------------------------------------- dtypes, shapes


@pytest.mark.parametrize("policy", ["float16", "mixed_float16", "mixed_bfloat16", "bfloat16"])
@pytest.mark.parametrize("layer_cls", [DropActivation, RandomizedReLU])
def test_computes_in_the_compute_dtype(policy, layer_cls):
    layer = layer_cls(seed=0, dtype=policy)
    x = np.random.default_rng(3).normal(size=(4, 8)).astype("float32")
    expected_dtype = keras.DTypePolicy(policy).compute_dtype
    for training in (True, False):
        y = layer(x, training=training)
        assert keras.backend.standardize_dtype(y.dtype) == expected_dtype
    y = to_numpy(ops.cast(layer(x, training=False), "float32"))
    slope = 1 - P if layer_cls is DropActivation else 11 / 48
    np.testing.assert_allclose(y, np.where(x >= 0, x, slope * x), rtol=1e-2, atol=1e-2)


def test_output_shape_and_symbolic_use():
    for layer in (DropActivation(), RandomizedReLU()):
        assert layer.compute_output_shape((None, 5, 3)) == (None, 5, 3)
        out = layer(keras.Input((5, 3)))
        assert tuple(out.shape) == (None, 5, 3)


# --------------------------------------------------------- argument checking


@pytest.mark.parametrize("p", [0, -0.1, 1.5, float("nan"), "0.9", True, None])
def test_invalid_p_is_rejected_with_the_valid_range(p):
    with pytest.raises(ValueError, match=r"`p`.*\(0, 1\]"):
        DropActivation(p=p)


def test_unknown_activation_lists_the_choices():
    with pytest.raises(ValueError, match="not an elementwise Keras activation.*relu"):
        DropActivation(activation="rleu")


@pytest.mark.parametrize("activation", ["softmax", "log_softmax", keras.activations.softmax])
def test_non_elementwise_activation_is_rejected(activation):
    with pytest.raises(ValueError, match="elementwise"):
        DropActivation(activation=activation)


def test_non_callable_activation_is_rejected():
    with pytest.raises(ValueError, match="activation=3"):
        DropActivation(activation=3)


def test_unknown_sampler_lists_the_choices():
    with pytest.raises(ValueError, match=r"`sampler`: 'gpu'.*'auto', 'bits', 'bytes'"):
        DropActivation(sampler="gpu")


@pytest.mark.parametrize(
    "kwargs, pattern",
    [({"lower": -0.1}, "`lower`"), ({"upper": "x"}, "`upper`"), ({"lower": 0.5, "upper": 0.2}, "lower <= upper")],
)
def test_invalid_rrelu_bounds_are_rejected(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        RandomizedReLU(**kwargs)


# ------------------------------------------------------------- serialization


@keras.saving.register_keras_serializable(package="keras_dropact_tests")
def shifted_softplus(x):
    return keras.activations.softplus(x) - np.log(2.0).astype("float32")


@pytest.mark.parametrize(
    "layer",
    [
        DropActivation(p=0.9, activation="gelu", seed=3, name="da"),
        DropActivation(p=0.9, activation=shifted_softplus, seed=3, sampler="bits"),
        RandomizedReLU(lower=0.1, upper=0.2, seed=9),
        DropActivation(p=0.9, activation=ReLUVariant(3.0, 0.1, 0.5), seed=3),
    ],
    ids=["builtin", "custom-bits", "rrelu", "relu-variant"],
)
def test_config_round_trip(layer):
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    x = np.linspace(-2, 2, 11, dtype="float32")[None]
    np.testing.assert_array_equal(to_numpy(clone(x)), to_numpy(layer(x)))
    np.testing.assert_array_equal(
        to_numpy(clone(x, training=True)), to_numpy(layer(x, training=True))
    )


def test_config_records_the_sampler_and_old_configs_load_with_auto():
    assert DropActivation(sampler="bits").get_config()["sampler"] == "bits"
    assert DropActivation().get_config()["sampler"] == "auto"
    # A config saved before the sampler existed.
    old = DropActivation(p=0.9, seed=4).get_config()
    del old["sampler"]
    assert DropActivation.from_config(old).sampler == "auto"


def small_model(sampler="auto", activation="relu"):
    inputs = keras.Input((6,))
    x = keras.layers.Dense(8)(inputs)
    x = DropActivation(p=0.9, activation=activation, seed=1, sampler=sampler)(x)
    x = keras.layers.Dense(8)(x)
    x = RandomizedReLU(seed=2)(x)
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def test_keras_file_round_trip_in_a_fresh_process(tmp_path):
    keras.utils.set_random_seed(0)
    # The package's own activation function (what `convert` makes of a
    # ReLU(max_value, negative_slope, threshold) layer) loads too.
    model = small_model(activation=ReLUVariant(1.0, 0.1, 0.5))
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import numpy as np, keras
        model = keras.saving.load_model({str(path)!r})  # no custom_objects needed
        np.save({str(tmp_path / 'y.npy')!r}, keras.ops.convert_to_numpy(
            model(np.load({str(tmp_path / 'x.npy')!r}))))
        print(sorted(type(l).__name__ for l in model.layers))
        """
    )
    # Importing keras_dropact registers the layers; the fresh process does it
    # through the registered names alone once the package is imported.
    out = subprocess.run(
        [sys.executable, "-c", "import keras_dropact\n" + script],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "DropActivation" in out.stdout and "RandomizedReLU" in out.stdout
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), to_numpy(model(x)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("trained, other", [("bits", "bytes"), ("bytes", "bits")])
def test_a_model_trained_with_one_sampler_loads_and_trains_with_the_other(
    tmp_path, trained, other
):
    # The sampler decides which masks are drawn, not what the model is: the
    # weights saved by one load into the same network with the other.
    def fit(model, epochs):
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model.fit(x, y, epochs=epochs, batch_size=8, verbose=0).history["loss"]

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.integers(0, 3, size=32)
    model = small_model(trained)
    fit(model, epochs=2)
    model.save(tmp_path / "trained.keras")

    loaded = keras.saving.load_model(tmp_path / "trained.keras")
    other_model = small_model(other)
    other_model.load_weights(tmp_path / "trained.keras")
    samplers = [
        [layer.sampler for layer in m.layers if isinstance(layer, DropActivation)]
        for m in (loaded, other_model)
    ]
    assert samplers == [[trained], [other]]
    expected = to_numpy(model(x))
    np.testing.assert_allclose(to_numpy(loaded(x)), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(to_numpy(other_model(x)), expected, rtol=1e-6, atol=1e-6)
    assert np.isfinite(fit(other_model, epochs=1)).all()
    (layer,) = [layer for layer in other_model.layers if isinstance(layer, DropActivation)]
    rate = kept_fraction(layer, (500, 8)).mean()
    assert abs(rate - 0.9) < 5 * np.sqrt(0.9 * 0.1 / 4000)


# ------------------------------------------------------- compilation, graphs


@tensorflow_only
@pytest.mark.parametrize("sampler", ["bits", "bytes"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_tf_function_with_unknown_batch_and_xla(jit_compile, sampler):
    import tensorflow as tf

    layer = DropActivation(p=0.5, seed=0, sampler=sampler)

    @tf.function(
        jit_compile=jit_compile,
        input_signature=[tf.TensorSpec((None, 64), tf.float32)],
    )
    def train_step(x):
        return layer(x, training=True)

    x = -np.ones((300, 64), "float32")
    first, second = train_step(x).numpy(), train_step(x).numpy()
    assert abs((first == 0).mean() - 0.5) < 0.02
    assert not np.array_equal(first, second), "a traced graph must redraw masks"


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit")
@pytest.mark.parametrize("sampler", ["bits", "bytes"])
def test_jax_jit_redraws_masks(sampler):
    import jax

    layer = DropActivation(p=0.5, seed=0, sampler=sampler)
    x = -np.ones((100, 64), "float32")

    @jax.jit
    def step(state, x):
        y, state = layer.stateless_call([], state, x, training=True)
        return y, state

    state = [v.value for v in layer.non_trainable_variables]
    y1, state = step(state, x)
    y2, state = step(state, x)
    assert abs((np.asarray(y1) == 0).mean() - 0.5) < 0.03
    assert not np.array_equal(np.asarray(y1), np.asarray(y2))


@tensorflow_only
def test_random_ops_only_in_the_training_graph():
    import tensorflow as tf

    def op_types(layer, training):
        fn = tf.function(lambda x: layer(x, training=training))
        graph = fn.get_concrete_function(tf.TensorSpec((None, 4), tf.float32)).graph
        return {op.type for op in graph.get_operations()}

    def has_random(types):
        return any("Random" in t for t in types)

    assert has_random(op_types(DropActivation(p=0.9), True))
    assert not has_random(op_types(DropActivation(p=0.9), False))
    assert not has_random(op_types(DropActivation(p=1.0), True))
    assert not has_random(op_types(RandomizedReLU(), False))


@tensorflow_only
def test_saved_model_export_serves_the_inference_form(tmp_path):
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    model = small_model()
    x = np.random.default_rng(1).normal(size=(7, 6)).astype("float32")
    model.export(str(tmp_path / "export"), format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    served = loaded.serve(x).numpy()
    np.testing.assert_allclose(served, model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(served, loaded.serve(x).numpy())  # deterministic


@tensorflow_only
@pytest.mark.parametrize("sampler", ["bits", "bytes"])
def test_mirrored_replicas_draw_different_masks(sampler):
    # Logical devices must be configured before TensorFlow starts: use a
    # fresh interpreter.
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from keras_dropact import DropActivation
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            layer = DropActivation(p=0.5, seed=123, sampler=sys.argv[1])
        x = -tf.ones((64, 64))
        @tf.function
        def step():
            return strategy.run(lambda: layer(x, training=True))
        first = [t.numpy() for t in strategy.experimental_local_results(step())]
        second = [t.numpy() for t in strategy.experimental_local_results(step())]
        print("SAME_ACROSS_REPLICAS", np.array_equal(first[0], first[1]))
        print("SAME_ACROSS_STEPS", np.array_equal(first[0], second[0]))
        print("RATE", (first[1] == 0).mean())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, sampler], capture_output=True, text=True, check=True
    ).stdout
    assert "SAME_ACROSS_REPLICAS False" in out
    assert "SAME_ACROSS_STEPS False" in out
    rate = float(out.split("RATE")[1].split()[0])
    assert abs(rate - 0.5) < 0.03


@pytest.mark.skipif(BACKEND != "torch", reason="torch devices")
def test_torch_outputs_and_masks_on_the_inputs_device():
    # Keras puts new tensors on its default device (the GPU where there is
    # one); a tensor elsewhere gets its masks and outputs where it is.
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        x = -torch.ones(64, 64, device=device)
        for layer in (
            DropActivation(p=0.5, seed=1, sampler="bits"),
            DropActivation(p=0.5, seed=1, sampler="bytes"),
            RandomizedReLU(seed=1),
        ):
            for training in (True, False):
                assert layer(x, training=training).device.type == device
