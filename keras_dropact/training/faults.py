"""A fault-injection hook for tests: SIGKILL this process at a named point.

Set `DROPACT_FAULT=POINT` or `DROPACT_FAULT=POINT:N` and the training
process kills itself (SIGKILL: no cleanup, like a power cut or the OOM
killer) when it reaches that point; `tests/test_run_safety.py` uses it to
kill at chosen moments and check that `--resume` loses nothing. Points:

    step:G           right after optimizer step G (before its backup, if any)
    epoch_backup:E   right after the end-of-epoch backup of epoch E, before
                     checkpoint.keras and the log.csv row
    log_row:E        after checkpoint.keras of epoch E, before its log.csv row
    final_save       while saving model.keras: its temporary file is written,
                     not yet renamed

Never set it outside tests.
"""

import os
import signal

ENV = "DROPACT_FAULT"


def point(name, index=None):
    """Kills this process with SIGKILL if `DROPACT_FAULT` names this point."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    here = name if index is None else f"{name}:{index}"
    if wanted == here:
        os.kill(os.getpid(), signal.SIGKILL)
