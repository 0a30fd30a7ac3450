"""The files keras-dropact keeps: how each is written, read back and cleaned up.

Every run file (config.json, dataset.json, results.json, log.csv,
checkpoint.keras, model.keras, the backups) and every export goes through
this module, so that one set of rules holds for all of them:

- **Atomic writes.** A file is written to the tool's own temporary name
  next to it (`temporary_path`: `NAME.tmp-PID`, or `STEM.tmp-PID.keras` and
  `STEM.tmp-PID.weights.h5` for writers that need the extension), fsynced
  and renamed (`atomic_write`); an export's folder is built as
  `.NAME.tmp-HOST-PID` and renamed when complete (`atomic_folder`). A
  process killed at any instruction leaves the old file or the new one,
  never half of one; a write that fails (a full disk) removes its
  temporary file or folder and raises `stops.CannotWrite` naming the file.
- **Strict JSON.** NaN and infinite floats are written as null, and NaN or
  Infinity tokens are refused when read (`write_json`, `load_json`).
- **Typed records.** What is read back is checked field by field
  (`record_problem`, with the kinds of a dataclass' annotations from
  `json_fields`); a file that fails is one line naming it and the problem
  (`read_record`), and is left as it is.
- **Cleanup of the tool's own files only.** A cleanup deletes regular files
  whose names are the temporary names of files it writes there
  (`remove_temporaries`), and the temporary folders of exports whose
  process is gone (`remove_stale_folders`); nothing else is ever deleted.
"""

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import shutil
import socket
import stat
import types
import typing

from keras_dropact.training.stops import CannotWrite

# The extensions Keras' writers need at the end of a file's name.
EXTENSIONS = (".keras", ".weights.h5")
# `temporary_path`'s names: STEM.tmp-PID[EXTENSION].
_TEMPORARY = re.compile(r"(?P<stem>[^/]+?)\.tmp-(?P<pid>[0-9]+)(?P<extension>\.keras|\.weights\.h5)?")
# `temporary_folder`'s names: .NAME.tmp-HOST-PID; keras-dropact 0.1.0's
# exports wrote .NAME.tmp-PID (HOST: this machine).
_TEMPORARY_FOLDER = re.compile(r"\.(?P<name>[^/]+?)\.tmp-(?:(?P<host>[^/]*)-)?(?P<pid>[0-9]+)")
# The largest integer a record may hold (a count): int64, as NumPy and
# TensorFlow hold them.
MAX_INT = 2**63 - 1


def temporary_path(path, extension=""):
    """The tool's temporary name for `path`: `PATH.tmp-PID`, or with
    `extension` (one of `EXTENSIONS`, ending `path`) kept at the end."""
    path = os.fspath(path)
    return f"{path[: len(path) - len(extension)]}.tmp-{os.getpid()}{extension}"


def temporary_target(name):
    """The file name whose temporary name (`temporary_path`) is `name`, or None."""
    match = _TEMPORARY.fullmatch(name)
    return None if match is None else match["stem"] + (match["extension"] or "")


def remove_temporaries(folder, is_own):
    """Deletes the temporary files a killed writer left in `folder`.

    Only regular files (not folders or links) whose name is the temporary
    name of a file `is_own(name)` accepts; a user's `notes.tmp-1` or
    `my.tmp-notes.txt` is kept. Call it only where no live process writes
    (the run's lock held). Returns the names removed.
    """
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in sorted(os.listdir(folder)):
        target = temporary_target(name)
        path = os.path.join(folder, name)
        if target is not None and is_own(target) and stat.S_ISREG(os.lstat(path).st_mode):
            os.remove(path)
            removed.append(name)
    return removed


def commit(temporary, path):
    """fsyncs `temporary`, then renames it to `path` (atomic on POSIX)."""
    with open(temporary, "rb") as f:
        os.fsync(f.fileno())
    os.replace(temporary, path)


@contextlib.contextmanager
def atomic_write(path, extension=""):
    """The temporary file through which `path` is written, for a `with` block.

    The block writes the temporary file (`temporary_path(path, extension)`);
    at its end the file is fsynced and renamed to `path`. When writing fails
    (an OSError: a full disk, a quota, permissions) the temporary file is
    removed and `stops.CannotWrite` names `path`; any other error, a signal
    included, removes it too.
    """
    temporary = temporary_path(path, extension)
    try:
        yield temporary
        commit(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError) and not isinstance(error, CannotWrite):
            raise CannotWrite(os.fspath(path), error) from error
        raise


def strict(value):
    """`value` as strict JSON holds it: tuples as lists, every non-finite
    float as None (null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(item) for item in value]
    return value


def write_json(path, value):
    """Writes `value` as strict JSON to `path` (`atomic_write`): NaN and
    infinite floats become null (Python's json would write bare `NaN`)."""
    with atomic_write(path) as temporary, open(temporary, "w") as f:
        json.dump(strict(value), f, indent=2, allow_nan=False)


def write_text(path, text):
    """Writes `text` to `path` (`atomic_write`)."""
    with atomic_write(path) as temporary, open(temporary, "w", newline="") as f:
        f.write(text)


def save_model(model, path, before_rename=None):
    """`model.save(path)` through a temporary `.keras` file (`atomic_write`).

    `before_rename()`, if given, runs between the two (the fault-injection
    tests kill the process there).
    """
    with atomic_write(path, ".keras") as temporary:
        model.save(temporary)
        if before_rename is not None:
            before_rename()


def load_json(path):
    """The strict JSON in `path` (NaN and Infinity tokens are refused).

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not strict JSON (or not UTF-8 text).
    """
    def refuse(token):
        raise ValueError(f"the non-standard token {token}")

    with open(path, "rb") as f:
        return json.loads(f.read(), parse_constant=refuse)


def read_json(path, what, fix):
    """`load_json(path)`, else one RuntimeError line naming the file.

    `what` is what the file should hold ("a run configuration"); `fix` what
    to do when it does not.
    """
    try:
        return load_json(path)
    except OSError as error:
        raise RuntimeError(f"{path!r} is unreadable ({error.strerror}); {fix}") from None
    except ValueError as error:
        raise RuntimeError(
            f"{path!r} is not valid JSON ({error}), so not {what}; it is left as it is. {fix}"
        ) from None


def read_record(path, what, fix, parse):
    """`parse(read_json(path, ...))`: the record in `path`, checked.

    `parse(values)` builds the record or raises ValueError with the first
    problem in a few words; that is one RuntimeError line naming the file
    and `what` it should be ("a run's results"), which is left as it is,
    and the `fix`.
    """
    values = read_json(path, what, fix)
    try:
        return parse(values)
    except ValueError as error:
        raise RuntimeError(
            f"{path!r} is not {what} ({error}); it is left as it is. {fix}"
        ) from None


def sha256(path):
    """The SHA-256 of the file at `path`, as 64 hex digits (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def has_kind(value, kind):
    """`value` is a JSON value of `kind`: None, bool, int, float (any
    finite number), str, list, dict; an int is at most `MAX_INT` in size."""
    if kind is None:
        return value is None
    if isinstance(value, bool):
        return kind is bool
    if isinstance(value, int) and abs(value) > MAX_INT:
        return False
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def json_fields(cls):
    """Each field of the dataclass `cls` with the kinds of JSON value it
    holds (for `record_problem`), from its annotation."""
    fields = {}
    for name, annotation in typing.get_type_hints(cls).items():
        options = (typing.get_args(annotation)
                   if isinstance(annotation, types.UnionType) else (annotation,))
        fields[name] = tuple(
            None if option is type(None) else typing.get_origin(option) or option
            for option in options
        )
    return fields


def record_problem(values, fields, optional=()):
    """The first way `values` is not a record of `fields`, or None.

    `fields` maps each key to the kinds its value may have (see
    `has_kind`); every key must be there, but those in `optional`, and no
    other.
    """
    if not isinstance(values, dict):
        return f"a JSON object is needed, not {type(values).__name__}"
    missing = sorted(set(fields) - set(values) - set(optional))
    unknown = sorted(set(values) - set(fields))
    if missing or unknown:
        return ", ".join(f"{what} keys {keys}" for what, keys in
                         (("missing", missing), ("unknown", unknown)) if keys)
    for key, kinds in fields.items():
        if key in values and not any(has_kind(values[key], kind) for kind in kinds):
            return f"{key!r} is {values[key]!r}"
    return None


# Folders: an export's version --------------------------------------------


def temporary_folder(path):
    """`.NAME.tmp-HOST-PID` next to `path`: where this process builds it."""
    parent, name = os.path.split(os.fspath(path))
    return os.path.join(parent, f".{name}.tmp-{socket.gethostname()}-{os.getpid()}")


def _process_exists(pid):
    """Whether process `pid` exists on this machine (kept when unsure)."""
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # Another user's process; not a PID.
        return True
    return True


def remove_stale_folders(parent, name=None):
    """Deletes the `temporary_folder`s in `parent` of this machine's
    processes that are gone (a killed export's or publish's); with `name`,
    only those of the folder `name` (a user's folder, where other names are
    none of the tool's business).

    One whose process still runs (an export in progress) is kept, and so is
    every folder of another machine (HOST), whose processes this one cannot
    see (a shared filesystem); so are links and files of such names.
    """
    host = socket.gethostname()
    for entry in os.listdir(parent):
        match = _TEMPORARY_FOLDER.fullmatch(entry)
        path = os.path.join(parent, entry)
        if (match and match["host"] in (None, host) and name in (None, match["name"])
                and not _process_exists(int(match["pid"]))
                and stat.S_ISDIR(os.lstat(path).st_mode)):
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def made_folders(path):
    """`os.makedirs(path)` for a `with` block that writes there (an export,
    a publish): if the block raises, the folders this created are removed
    again, innermost first and only where left empty, so that a failed
    command leaves no trace of its own.

    Raises:
        RuntimeError: a folder cannot be created (one line, naming it).
    """
    created = _make_folders(path)
    try:
        yield
    except BaseException:
        for folder in reversed(created):
            if not os.listdir(folder):
                os.rmdir(folder)
        raise


def _make_folders(path):
    """`os.makedirs(path)`; returns the folders it created, outermost first.

    Raises:
        RuntimeError: a folder cannot be created (one line, naming it).
    """
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    created = []
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except OSError as error:
            for done in reversed(created):
                os.rmdir(done)
            raise RuntimeError(
                f"Cannot create the folder {folder!r}: {error.strerror or error}."
            ) from None
        created.append(folder)
    return created


@contextlib.contextmanager
def atomic_folder(path, before_rename=None, empty_ok=False):
    """The temporary folder (`temporary_folder`) through which the folder
    `path` is written, for a `with` block; renamed to `path` at its end.

    A folder that exists at `path` is never replaced (FileExistsError), but
    an empty one with `empty_ok`: the rename replaces it in one step (POSIX
    renames onto an empty folder, and onto nothing else).
    Whatever stops the block (an error, a signal's exception) removes the
    temporary folder; an OSError (a full disk) becomes `stops.CannotWrite`
    naming `path`. `before_rename()`, if given, runs just before the rename
    (the fault-injection tests kill the process there).
    """
    temporary = temporary_folder(path)
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        os.makedirs(temporary)
        yield temporary
        if before_rename is not None:
            before_rename()
        _rename_folder(temporary, path, empty_ok)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(error, OSError) and not isinstance(error, (CannotWrite, FileExistsError)):
            raise CannotWrite(os.fspath(path), error) from error
        raise


def _rename_folder(temporary, path, empty_ok):
    """`os.rename(temporary, path)` onto nothing, or with `empty_ok` onto an
    empty folder (not a link); FileExistsError if anything else is there."""
    appeared = FileExistsError(f"{path!r} appeared meanwhile; refusing to overwrite it.")
    if os.path.lexists(path) and not (empty_ok and is_empty_folder(path)):
        raise appeared
    try:
        os.rename(temporary, path)
    except OSError as error:
        if error.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise appeared from None
        raise


def is_empty_folder(path):
    """`path` is a folder (not a link to one) holding nothing."""
    return not os.path.islink(path) and os.path.isdir(path) and not os.listdir(path)
