"""How a run stops early: divergence, SIGINT/SIGTERM, a write that fails.

A run whose loss, weights or evaluation stop being finite raises
`TrainingDiverged` before any backup of them is written; one that receives
SIGINT or SIGTERM (`keras_dropact.interrupts.StopSignals`) raises
`TrainingInterrupted` at the next point where nothing is lost; one that
cannot write its run directory (a full disk) raises `CannotWrite` after
removing what it had half written. Each is one line saying what to do; the
`dropact train` exit codes are `EXIT_CODES`. This module imports neither
Keras nor TensorFlow.
"""

import os
import shlex

import numpy as np

from keras_dropact.interrupts import Interrupted

# dropact train's exit codes (its --help and docs/guides/training.md list them).
EXIT_DIVERGED = 3
EXIT_CANNOT_WRITE = 74  # EX_IOERR of sysexits.h
EXIT_CODES = (
    "0 done (or already finished), 2 bad input or refused, "
    f"{EXIT_DIVERGED} diverged (a non-finite loss, weight or evaluation), "
    f"{EXIT_CANNOT_WRITE} a file could not be written (disk full), "
    "130/143 stopped by SIGINT/SIGTERM (128 + the signal)"
)


def resume_command(run_dir):
    return f"dropact train --resume --run-dir {shlex.quote(str(run_dir))}"


class TrainingDiverged(RuntimeError):
    """The loss, a weight or the evaluation stopped being finite."""

    def __init__(self, run_dir, optimizer_step, epoch, what):
        self.run_dir = run_dir
        self.optimizer_step = optimizer_step
        self.epoch = epoch
        super().__init__(
            f"training diverged: {what} at optimizer step {optimizer_step} "
            f"(epoch {epoch}); stopped. {run_dir}/results.json says so and the "
            "last finite backup is kept. Start a new run with a lower --lr "
            "(or a longer warm-up)."
        )


class TrainingInterrupted(Interrupted):
    """SIGINT or SIGTERM stopped the run where nothing is lost."""

    def __init__(self, signum, run_dir, message):
        self.run_dir = run_dir
        super().__init__(signum, message)


def raise_if_signalled(signals, run_dir, state=None, backed_up=False, started=True):
    """Raises `TrainingInterrupted` once `signals` has received a signal.

    Args:
        signals: the run's `StopSignals`.
        run_dir: the run directory, for the resume command.
        state: the `TrainingState` just backed up (or, with `backed_up`
            False, of a light run); None before training.
        backed_up: a backup of `state` was written.
        started: the run directory holds the run (its config.json).
    """
    if signals.received is None:
        return
    if not started:
        message = "before the run started; nothing was written."
    elif state is None:
        message = f"before training started. Resume with: {resume_command(run_dir)}"
    else:
        where = (f"at epoch {state.epoch}, step {state.step} "
                 f"(optimizer step {state.optimizer_steps})")
        message = (
            f"{where}; backup saved. Resume with: {resume_command(run_dir)}" if backed_up
            else f"{where}; this light run keeps no backup, so resuming restarts it."
        )
    raise TrainingInterrupted(signals.received, run_dir, message)


class CannotWrite(OSError):
    """A file of the run could not be written (disk full, quota, permissions).

    The writer removed its temporary file: nothing half-written is left.
    `then` says what to do; the run sets it (`advise`).
    """

    def __init__(self, path, error):
        # HDF5's own text spans lines; the errno names the problem.
        reason = os.strerror(error.errno) if error.errno else str(error).splitlines()[0]
        super().__init__(error.errno, reason, path)
        self.then = "nothing half-written was left"

    def advise(self, then):
        self.then = then
        return self

    def __str__(self):
        return f"cannot write {self.filename!r} ({self.strerror}); {self.then}"


def check_finite(value, what, run_dir, optimizer_step, epoch):
    """Raises `TrainingDiverged` unless every element of `value` is finite.

    Args:
        value: a NumPy array (or scalar).
        what: what `value` is, for the message ("the loss is not finite").
        run_dir: the run directory, for the message.
        optimizer_step, epoch: where the run is (the epoch `value` belongs to).
    """
    if not np.all(np.isfinite(value)):
        raise TrainingDiverged(run_dir, optimizer_step, epoch, what)
