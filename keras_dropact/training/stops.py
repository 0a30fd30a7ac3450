"""How a run stops early: divergence and SIGINT/SIGTERM.

A run whose loss or weights stop being finite raises `TrainingDiverged`
before any backup of them is written; one that receives SIGINT or SIGTERM
raises `TrainingInterrupted` after a backup of the step it was at. This
module imports neither Keras nor TensorFlow.
"""

import shlex
import signal
import sys
import threading

import numpy as np


class TrainingDiverged(RuntimeError):
    """The loss (or, at a backup, a weight) stopped being finite."""

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


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped the run, after a backup of where it was."""

    def __init__(self, signum, run_dir, epoch, step, optimizer_steps, backed_up):
        self.signum = signum
        self.run_dir = run_dir
        name = signal.Signals(signum).name
        where = f"at epoch {epoch}, step {step} (optimizer step {optimizer_steps})"
        if backed_up:
            super().__init__(
                f"interrupted by {name} {where}; backup saved. Resume with: "
                f"dropact train --resume --run-dir {shlex.quote(run_dir)}"
            )
        else:
            super().__init__(
                f"interrupted by {name} {where}; this light run keeps no "
                "backup, so resuming restarts it."
            )


def check_finite(value, what, run_dir, state):
    """Raises `TrainingDiverged` unless every element of `value` is finite.

    Args:
        value: a NumPy array (or scalar).
        what: what `value` is, for the message ("the loss is not finite").
        run_dir: the run directory, for the message.
        state: the run's `TrainingState` (its position goes in the message).
    """
    if not np.all(np.isfinite(value)):
        raise TrainingDiverged(run_dir, state.optimizer_steps, state.epoch, what)


class StopSignals:
    """Turns SIGINT and SIGTERM into a request to stop after a backup.

    While active (a `with` block, main thread only), the first SIGINT or
    SIGTERM sets `received`; the run then backs up at the end of the current
    step (or epoch) and calls `raise_if_received`. A second signal gets the
    previous handler (Ctrl-C twice: KeyboardInterrupt at once).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received = None
        self._previous = {}

    def raise_if_received(self, run_dir, state, backed_up):
        """Raises `TrainingInterrupted` (at `state`'s position) after a signal."""
        if self.received is not None:
            raise TrainingInterrupted(
                self.received, run_dir, state.epoch, state.step, state.optimizer_steps,
                backed_up=backed_up,
            )

    def _handle(self, signum, frame):
        if self.received is not None:
            previous = self._previous.get(signum, signal.SIG_DFL)
            signal.signal(signum, previous)
            signal.raise_signal(signum)
            return
        self.received = signum
        print(
            f"\ndropact train: {signal.Signals(signum).name} received; saving a "
            "backup after this step.", file=sys.stderr, flush=True,
        )

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False
