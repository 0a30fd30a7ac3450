"""SIGINT and SIGTERM as requests to stop, which the `dropact` command never loses.

`StopSignals` turns the first SIGINT (Ctrl-C) or SIGTERM (what schedulers
send before they kill) into a flag, `received`, that a run reads at safe
points (between two optimizer steps, between the stages of its start), so
that it stops where nothing is lost instead of wherever the signal lands.
A second signal gets the handler that was there before: Ctrl-C twice stops
at once.

Keras, TensorFlow and JAX take seconds to import, and a Ctrl-C meanwhile
raises KeyboardInterrupt wherever the import is: dozens of lines of
traceback, or nothing at all when it lands in a garbage-collection callback
(JAX's `_xla_gc_callback`), whose exceptions Python prints and drops, so
that the command then ran to its end. The `dropact` command therefore holds
the signals from its first instruction: `keras_dropact/__init__.py` calls
`hold_for_command()` before it imports Keras, and the command takes the
held `StopSignals` over (`command_signals`). In any other program,
importing keras_dropact changes no signal handler.

This module imports only the standard library: it runs before Keras.
"""

import os
import signal
import sys
import threading

COMMAND_MODULE = "keras_dropact.cli"


class StopSignals:
    """SIGINT and SIGTERM as a flag while active (a `with` block; nestable).

    Handlers can only be set in the main thread; elsewhere it does nothing.
    With `at_once` set, the first signal raises `StoppedAtOnce` where it
    lands instead (commands with nothing to save: their `with` and `finally`
    blocks remove what they had half-written).

    Attributes:
        received: the first signal's number, or None.
        notice: what the process does about it, printed when it arrives.
        at_once: raise `StoppedAtOnce` at the first signal.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, notice="stopping at the next safe point"):
        self.received = None
        self.notice = notice
        self.at_once = False
        self._previous = {}
        self._depth = 0

    def _handle(self, signum, frame):
        if self.received is not None:
            previous = self._previous.get(signum, signal.SIG_DFL)
            signal.signal(signum, previous)
            signal.raise_signal(signum)
            return
        self.received = signum
        if self.at_once:
            raise StoppedAtOnce(signum)
        print(
            f"\ndropact: {signal.Signals(signum).name} received; {self.notice} "
            "(again to stop at once).", file=sys.stderr, flush=True,
        )

    def hold(self):
        """Installs the handlers now, until the end of the next `with` block."""
        if not self._previous and threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def __enter__(self):
        self.hold()
        self._depth += 1
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
            self._previous = {}
        return False


class StoppedAtOnce(BaseException):
    """SIGINT or SIGTERM stopped a command where it was (`StopSignals.at_once`).

    A BaseException, as KeyboardInterrupt is, so that no `except Exception`
    on its way takes it for a failure.
    """

    def __init__(self, signum):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}.")


class Interrupted(Exception):
    """Work that SIGINT or SIGTERM stopped where nothing is lost (`signum`:
    the signal); its message says where, and how to go on."""

    def __init__(self, signum, message):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name} {message}")


_held = None


def _runs_the_command():
    """True in the process of the `dropact` command: its console script, or
    `python -m keras_dropact.cli` (how `--backend` restarts it)."""
    argv = getattr(sys, "orig_argv", sys.argv)
    by_module = any(a == "-m" and b == COMMAND_MODULE for a, b in zip(argv, argv[1:]))
    return by_module or os.path.basename(sys.argv[0]) == "dropact"


def hold_for_command():
    """Holds SIGINT and SIGTERM from now on if this process is the `dropact` command."""
    global _held
    if _held is None and _runs_the_command():
        _held = StopSignals()
        _held.hold()


def command_signals():
    """The `dropact` command's `StopSignals`, for its `with` block: those
    held since the import (`hold_for_command`), else new ones."""
    global _held
    signals, _held = _held or StopSignals(), None
    return signals
