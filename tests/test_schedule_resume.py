"""The learning-rate schedule across a resume (issue 25 item 9;
keras_dropact/training/schedule.py): a run stopped before its warm-up ends
and resumed from a backup as keras-dropact wrote it before the schedule
(format 1, with a learning-rate variable in the optimizer's state) ends
with the uninterrupted run's weights, bit for bit (`--deterministic`), its
rate changing at the same steps.
"""

import json
import os
import shutil
import warnings

import h5py
import keras
import numpy as np
import pytest

from keras_dropact import pipelines
from keras_dropact.training import faults
from keras_dropact.training import recipes
from keras_dropact.training import run_dir as rd
from keras_dropact.training.backups import Backups
from keras_dropact.training.backups import sha256
from keras_dropact.training.config import TrainConfig
from keras_dropact.training.run import build_model
from keras_dropact.training.run import compile_model
from keras_dropact.training.stops import TrainingInterrupted
from keras_dropact.training.train import train
from tests.conftest import saved_weights
from tests.conftest import tensorflow_only
from tests.test_run_safety import RUN

pytestmark = [tensorflow_only, pytest.mark.slow]

# 3 epochs of 4 steps (RUN): rate 0.01 for steps 0-2 (warm-up), 0.05 for
# steps 3-7, 0.005 from epoch 2 (step 8) on.
STEPPED = recipes.Recipe(epochs=3, batch_size=32, lr=0.05, milestones=(2,), weight_decay=5e-4,
                         nesterov=True, warmup_steps=3, warmup_lr=0.01)
STEPS_PER_EPOCH = 4


def _as_format_1(run):
    """Rewrites the run's backups as keras-dropact wrote them before issue 25:
    Keras' `save_weights` of the model with an SGD whose learning rate is a
    variable (second in its state, after the step counter; holding the last
    step's rate, which the per-batch callback had set), JSON "format": 1."""
    config = rd.RunDir(run).read_config()
    info = pipelines.info(config.dataset)
    for step, mark in Backups(os.path.join(run, rd.BACKUP)).marks():
        weights = mark.removesuffix(".json") + ".weights.h5"
        current = build_model(config, info, STEPPED)
        compile_model(current, STEPPED, STEPS_PER_EPOCH)
        current.optimizer.build(current.trainable_variables)
        current.load_weights(weights)
        old = build_model(config, info, STEPPED)
        old.compile(optimizer=keras.optimizers.SGD(STEPPED.lr, momentum=0.9, nesterov=True),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        old.optimizer.build(old.trainable_variables)
        for target, source in zip(old.weights, current.weights):
            target.assign(source)
        counter, rate, *slots = old.optimizer.variables
        counter.assign(current.optimizer.iterations)
        rate.assign(STEPPED.learning_rate((step - 1) // STEPS_PER_EPOCH, step - 1))
        for target, source in zip(slots, current.optimizer.variables[1:]):
            target.assign(source)
        os.remove(weights)
        old.save_weights(weights)
        with h5py.File(weights, "r") as f:  # The layout of format 1.
            assert len(f["optimizer/vars"]) == len(current.optimizer.variables) + 1
            assert f["optimizer/vars/1"][()] == np.float32(0.01)
        with open(mark) as f:
            saved = json.load(f)
        rd.write_json(mark, {**saved, "format": 1, "sha256": sha256(weights)})


def test_a_resume_from_a_backup_of_the_previous_format_follows_the_schedule_bit_for_bit(
        tmp_path, monkeypatch):
    """Backups of this format resume in tests/test_run_safety.py (and bit for
    bit in tests/test_distribution.py); the same code runs after the load."""
    monkeypatch.setitem(recipes.RECIPES, "stepped", STEPPED)
    config = dict(RUN, recipe="stepped")
    reference = train(TrainConfig(run_dir=str(tmp_path / "reference"), **config), verbose=0)
    assert [row["lr"] for row in reference["history"]] == [np.float32(r).item() for r in (0.05, 0.05, 0.005)]
    run = str(tmp_path / "stopped")
    monkeypatch.setenv(faults.ENV, "step:2@SIGTERM")  # In the warm-up.
    with pytest.raises(TrainingInterrupted, match="optimizer step 2"):
        train(TrainConfig(run_dir=run, **config), verbose=0)
    monkeypatch.delenv(faults.ENV)
    _as_format_1(run)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = train(TrainConfig(run_dir=run), resume=True, verbose=0)
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert results["optimizer_steps"] == 12 and results["processes"] == 2
    assert results["test_loss"] == reference["test_loss"]
    assert len(results["history"]) == len(reference["history"]) == 3
    for row, expected in zip(results["history"], reference["history"]):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert row[key] == expected[key], (row["epoch"], key)
    for resumed, uninterrupted in zip(saved_weights(run), saved_weights(str(tmp_path / "reference"))):
        np.testing.assert_array_equal(resumed, uninterrupted)
    # The run's new backups are of this format.
    with open(Backups(os.path.join(run, rd.BACKUP)).marks()[0][1]) as f:
        assert json.load(f)["format"] == 2
