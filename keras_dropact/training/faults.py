"""A fault-injection hook for tests: a kill, a signal or a full disk at a named point.

Set `DROPACT_FAULT=POINT`, `DROPACT_FAULT=POINT:N` or either with an
`@FAULT` suffix, and the training process meets that fault when it reaches
that point; `tests/test_run_safety.py` and `tests/test_run_lifecycle.py`
use it to stop runs at chosen moments and check that nothing is lost.
Faults:

    (none), @SIGKILL  the process kills itself with SIGKILL (no cleanup,
                      like a power cut or the OOM killer)
    @SIGINT, @SIGTERM the process sends itself that signal and goes on, as
                      a user's Ctrl-C or a scheduler's SIGTERM arriving at
                      that moment
    @SIGSTOP          the process stops (as `kill -STOP`) until a SIGCONT,
                      so that a test acts at that moment: signals it, tries
                      a second process on its run, kills it from outside
    @ENOSPC           OSError(ENOSPC) is raised there, as a write to a full
                      disk raises it

Points:

    run_start        `Run.fit` has begun; nothing is checked or written yet
    claimed          the run directory is locked and its config.json written
    step:G           right after optimizer step G (before its backup, if any)
    backup_weights:G a backup's weights file is written under its temporary
                     name, not yet renamed (G: its optimizer step)
    epoch_backup:E   right after the end-of-epoch backup of epoch E, before
                     checkpoint.keras and the log.csv row
    log_row:E        after checkpoint.keras of epoch E, before its log.csv row
    final_save       while saving model.keras: its temporary file is written,
                     not yet renamed
    export_publish   `export`: the version's temporary folder is complete,
                     not yet renamed

Never set it outside tests.
"""

import errno
import os
import signal

ENV = "DROPACT_FAULT"
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM,
           "SIGSTOP": signal.SIGSTOP}


def point(name, index=None):
    """Meets the fault `DROPACT_FAULT` names, if it names this point."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    place, _, fault = wanted.partition("@")
    if place != (name if index is None else f"{name}:{index}"):
        return
    if fault == "ENOSPC":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{ENV}={wanted}")
    os.kill(os.getpid(), SIGNALS[fault or "SIGKILL"])
