"""`Counters`: a run's time and speed, over all the processes that trained it."""

import time


class Counters:
    """Measures training time, examples and epoch seconds across resumes.

    Training speed leaves out each process' first step (which traces and
    compiles) and validation: the timed intervals run from the end of a
    step to the start of validation or the end of the epoch, and count the
    examples read meanwhile (an interval without a step counts nothing).
    An epoch's seconds leave them out too: the first step's seconds, from
    the epoch's start to that step's end, are its `compile_seconds`, so
    that a resumed epoch, which traces again, is not counted slower.

    Args:
        state: the restored `TrainingState` (its counters carry on), or a
            fresh one.
        examples: `examples(first_step, stop_step)`, the training examples
            read in those global optimizer steps.
        started: `time.perf_counter()` when this process started the run.
    """

    def __init__(self, state, examples, started=None):
        self.examples = examples
        self.processes = state.processes + 1
        self._wall_before = state.wall_seconds
        self._timed_seconds = state.train_seconds
        self._timed_examples = state.timed_examples
        self._started = time.perf_counter() if started is None else started
        self._traced = False  # True once this process has run its first step.
        self._since = None  # (perf_counter, optimizer step) of the open interval.
        self._epoch_before = state.epoch_seconds if state.mid_epoch else 0.0
        self._epoch_start = None
        self._epoch_train_seconds = None
        self._epoch_compile = 0.0  # This process' first step, in the open epoch.

    def _open(self, optimizer_steps):
        if self._traced and self._since is None:
            self._since = (time.perf_counter(), optimizer_steps)

    def _close(self, optimizer_steps):
        if self._since is not None:
            since, first = self._since
            if optimizer_steps > first:
                self._timed_seconds += time.perf_counter() - since
                self._timed_examples += self.examples(first, optimizer_steps)
            self._since = None

    def epoch_began(self, optimizer_steps):
        self._epoch_start = time.perf_counter()
        self._epoch_train_seconds = None
        self._open(optimizer_steps)

    def step_done(self, optimizer_steps):
        if not self._traced:
            self._traced = True
            if self._epoch_start is not None:
                self._epoch_compile = time.perf_counter() - self._epoch_start
            self._open(optimizer_steps)

    def validation_began(self, optimizer_steps):
        self._close(optimizer_steps)
        if self._epoch_train_seconds is None:
            self._epoch_train_seconds = self.epoch_seconds()

    def epoch_ended(self, optimizer_steps):
        """Closes the epoch; returns (its training seconds over all processes,
        without this process' first step; that step's seconds, or 0.0 when
        it was in another epoch)."""
        self.validation_began(optimizer_steps)
        compile_seconds = self._epoch_compile
        self._epoch_before, self._epoch_start, self._epoch_compile = 0.0, None, 0.0
        return self._epoch_train_seconds, compile_seconds

    def epoch_seconds(self):
        """Training seconds of the unfinished epoch so far, over all
        processes, without this process' first step."""
        if self._epoch_start is None:
            return self._epoch_before
        return (self._epoch_before + time.perf_counter() - self._epoch_start
                - self._epoch_compile)

    def totals(self, optimizer_steps):
        """Time and speed over all processes of the run, up to now.

        `train_seconds` and `timed_examples` cover the timed intervals;
        `wall_seconds` adds up each process' time from its start to its last
        backup (the last process: to now).
        """
        if self._since is not None:
            self._close(optimizer_steps)
            self._open(optimizer_steps)
        seconds, examples = self._timed_seconds, self._timed_examples
        return {
            "wall_seconds": self._wall_before + time.perf_counter() - self._started,
            "train_seconds": seconds,
            "timed_examples": examples,
            "images_per_second": examples / seconds if seconds > 0 else None,
            "processes": self.processes,
        }
