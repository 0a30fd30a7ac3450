"""ShiftRatioMonitor: what it logs, and that it does not perturb training."""

import csv
import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_dropact import DropActivation
from keras_dropact import theory
from keras_dropact.callbacks import ShiftRatioMonitor
from tests.conftest import assert_same_weights


def tiny_model(seed=0):
    """Dense - BN - DropActivation - Dense, identical for equal seeds."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    x = keras.layers.Dense(16, name="dense_in")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = DropActivation(p=0.5, seed=seed, name="dropact")(x)
    outputs = keras.layers.Dense(1, name="dense_out")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def data(seed=1):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(64, 8)).astype("float32"),
        rng.normal(size=(64, 1)).astype("float32"),
    )


def train(callbacks, epochs=2):
    model = tiny_model()
    x, y = data()
    history = model.fit(
        x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
        callbacks=callbacks,
    )
    return model, history


def test_logs_a_finite_shift_ratio_per_epoch(tmp_path):
    x, _ = data()
    monitor = ShiftRatioMonitor("dropact", x[:32])
    log_file = tmp_path / "log.csv"
    _, history = train([monitor, keras.callbacks.CSVLogger(str(log_file))])
    ratios = history.history["shift_ratio"]
    assert len(ratios) == 2 and ratios == monitor.history
    assert all(math.isfinite(r) and 0.3 < r < 3.0 for r in ratios)
    with open(log_file) as f:
        rows = list(csv.DictReader(f))
    assert [float(row["shift_ratio"]) for row in rows] == pytest.approx(ratios)


def test_training_is_unchanged_by_the_monitor():
    x, _ = data()
    plain, _ = train([])
    monitored, _ = train([ShiftRatioMonitor("dropact", x[:32])])
    assert_same_weights(monitored.variables, plain.variables)


def test_monitor_restores_state_that_training_mode_changes():
    model = tiny_model()
    x, _ = data()
    monitor = ShiftRatioMonitor("dropact", x[:32])
    monitor.set_model(model)
    before = [ops.convert_to_numpy(v) for v in model.variables]
    monitor.compute_shift_ratio()
    after = [ops.convert_to_numpy(v) for v in model.variables]
    assert_same_weights(after, before)
    # Without the restore, the training-mode pass would have moved them:
    model(x[:32], training=True)
    moved = {
        v.path
        for v, a in zip(model.variables, before)
        if not np.array_equal(ops.convert_to_numpy(v), a)
    }
    assert "bn/moving_mean" in moved and "bn/moving_variance" in moved
    assert any("seed_generator_state" in path for path in moved)


def test_value_matches_property_5_2_on_standard_normal_input():
    # With N(0, 1) input straight into DropActivation, every channel is the
    # paper's X with d = 1 and w = 1, so the monitor measures eq. (15).
    p = 0.6314
    inputs = keras.Input((16,))
    model = keras.Model(inputs, DropActivation(p, seed=0, name="da")(inputs))
    x = np.random.default_rng(0).normal(size=(20_000, 16)).astype("float32")
    monitor = ShiftRatioMonitor("da", x)
    monitor.set_model(model)
    # 320000 values: relative standard error below 2/sqrt(320000) = 0.0035.
    expected = theory.shift_ratio(p)
    tolerance = 4 * 2 / math.sqrt(x.size) * expected
    assert abs(monitor.compute_shift_ratio() - expected) < tolerance


def test_channel_axis_selects_the_channels():
    # Channels first into BatchNormalization(axis=1): training mode scales
    # each channel c to variance v_c / (v_c + eps), inference mode (initial
    # moving statistics 0 and 1) to v_c / (1 + eps). The channels' means
    # 0, 10, 20 would add to the variance of a wrongly pooled "channel".
    eps = 1e-3
    inputs = keras.Input((3, 5))
    bn = keras.layers.BatchNormalization(axis=1, epsilon=eps, name="bn")
    model = keras.Model(inputs, bn(inputs))
    rng = np.random.default_rng(0)
    scale = np.array([1.0, 2.0, 3.0])[:, None]
    x = (rng.normal(size=(64, 3, 5)) * scale + 10 * scale - 10)
    x = x.astype("float32")
    v = x.var(axis=(0, 2))
    expected = np.mean(v / (1 + eps)) / np.mean(v / (v + eps))
    assert expected > 4.0
    monitor = ShiftRatioMonitor("bn", x, channel_axis=1)
    monitor.set_model(model)
    assert monitor.compute_shift_ratio() == pytest.approx(expected, rel=1e-4)
    wrong_axis = ShiftRatioMonitor("bn", x)  # channels last: 5 "channels"
    wrong_axis.set_model(model)
    assert wrong_axis.compute_shift_ratio() > 10 * expected


def test_unknown_layer_name_lists_valid_names():
    x, _ = data()
    with pytest.raises(ValueError, match=r"no top-level layer named 'nope'.*"
                       r"dense_in, bn, dropact"):
        train([ShiftRatioMonitor("nope", x[:8])], epochs=1)


def test_subclassed_model_is_rejected():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2, name="d")

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model(np.zeros((1, 3), "float32"))
    monitor = ShiftRatioMonitor("d", np.zeros((2, 3), "float32"))
    monitor.set_model(model)
    with pytest.raises(ValueError, match="functional or Sequential"):
        monitor.compute_shift_ratio()


@pytest.mark.parametrize(
    "kwargs", [{"layer_name": 3}, {"layer_name": "x", "channel_axis": "last"}]
)
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError, match="Invalid value"):
        ShiftRatioMonitor(x_batch=np.zeros((2, 3)), **kwargs)
