"""Named mutants: plausible defects, each with the tests that must catch it.

A mutant is one exact text edit of one file (`find`, which must occur exactly
once, becomes `replace`) and the tests (pytest node ids or files) that must
fail with it. This script copies the repository (the files git tracks or
would track: no virtual environment, no run) to a scratch folder, runs the
named tests there unmutated (they must pass), then applies each mutant in
turn to the scratch copy, runs its tests, and restores the file. The working
tree is never written. A mutant whose tests all pass is a *survivor*: the
tests named for it do not guard what it breaks.

    .venv/bin/python tools/mutants.py                 # every mutant
    .venv/bin/python tools/mutants.py --list          # names, files, tests
    .venv/bin/python tools/mutants.py NAME [NAME ...]

Exit status: 0 when every mutant was caught; 1 with a survivor; 2 when a
mutant no longer applies (its `find` text is not in its file exactly once:
update the list) or the unmutated tests fail. When to run it, and how long
it takes: CONTRIBUTING.md, "Mutants".

The scratch copy imports its own `keras_dropact` (PYTHONPATH, with the
`[tool.setuptools.package-dir]` folders of pyproject.toml linked into the
package), with this interpreter and its installed dependencies.
"""

import argparse
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 1200  # Seconds for one pytest run; a hang counts as caught.


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    find: str
    replace: str
    tests: tuple
    why: str


MUTANTS = (
    # --- the sampler and the layer: keras_dropact/random.py, layers/ -----------
    Mutant("bytes-sparse-rate-undivided", "keras_dropact/random.py",
           "    return threshold, (e - threshold / _LEVELS) / (1.0 - threshold / _LEVELS)",
           "    return threshold, e - threshold / _LEVELS",
           ("tests/test_random.py::test_bytes_parts_add_up_to_the_rare_outcome_exactly",
            "tests/test_random.py::test_rate_pooled_over_seeds"),
           "keep-rate bias 1.5e-4 at p = 0.95, 1.7e-3 near p = 0.5"),
    Mutant("bytes-unaligned-size-constant-mask", "keras_dropact/random.py",
           "        levels = levels[:n]",
           '        levels = ops.zeros((n,), dtype="uint8")',
           ("tests/test_random.py::test_rate_pooled_over_seeds",
            "tests/test_random.py::test_small_and_odd_shapes"),
           "a static size that is no multiple of 4 never applies f"),
    Mutant("bytes-threshold-rounded", "keras_dropact/random.py",
           "    threshold = int(e * _LEVELS)  # floor: t/256 <= e.",
           "    threshold = round(e * _LEVELS)",
           ("tests/test_random.py::test_bytes_parts_add_up_to_the_rare_outcome_exactly",
            "tests/test_random.py::test_rate_pooled_over_seeds"),
           "t/256 above e: the sparse rate is negative and dropped"),
    Mutant("bytes-no-sparse-events-below-1-over-256", "keras_dropact/random.py",
           "    return ops.less(levels, ops.full((), max(threshold, 1), dtype=\"uint8\"))",
           "    return ops.less(levels, ops.full((), threshold, dtype=\"uint8\"))",
           ("tests/test_random.py::test_rate_within_binomial_bound",),
           "p = 0.999 and p = 0.002 never draw their rare outcome"),
    Mutant("bits-signed-comparison", "keras_dropact/random.py",
           "    return ops.less(words, threshold + _INT32_MIN)",
           "    return ops.less(words, threshold)",
           ("tests/test_random.py::test_rate_within_binomial_bound",),
           "the bits sampler compares signed words: wrong rates"),
    Mutant("replica-seed-stride-zero", "keras_dropact/random.py",
           "_REPLICA_SEED_STRIDE = 0x9E3779B1 >> 1", "_REPLICA_SEED_STRIDE = 0",
           ("tests/test_layers.py::test_mirrored_replicas_draw_different_masks",),
           "every replica draws the same masks"),
    Mutant("inference-slope-p", "keras_dropact/layers/drop_activation.py",
           "ops.leaky_relu(inputs, negative_slope=1.0 - self.p)",
           "ops.leaky_relu(inputs, negative_slope=self.p)",
           ("tests/test_layers.py::test_inference_is_exactly_leaky_relu",),
           "inference uses slope p instead of 1 - p (paper eq. 5)"),
    # --- backups and resume: keras_dropact/training/backups.py, pipelines/ --------
    Mutant("backup-hash-first-mib", "keras_dropact/training/run_files.py",
           '        for block in iter(lambda: f.read(1 << 20), b""):',
           "        for block in [f.read(1 << 20)]:",
           ("tests/test_run_objects.py::test_a_flipped_byte_anywhere_in_a_large_backup_is_refused",),
           "damage after a backup's first MiB restores silently"),
    Mutant("backup-size-instead-of-hash", "keras_dropact/training/backups.py",
           '        if sha256(weights) != saved["sha256"]:',
           "        if os.path.getsize(weights) == 0:",
           ("tests/test_run_objects.py::test_a_flipped_byte_anywhere_in_a_large_backup_is_refused",
            "tests/test_run_objects.py::test_restore_falls_back_to_the_older_backup_then_refuses"),
           "a damaged backup of the right size is loaded"),
    Mutant("backup-seeds-not-restored", "keras_dropact/training/backups.py",
           '        assign(seed_variables(model), state.seeds, "random-seed")\n', "",
           ("tests/test_run_objects.py::test_a_backup_holds_the_state_and_its_envelope",),
           "a resumed run draws other masks than the uninterrupted one"),
    Mutant("backup-keeps-only-the-latest", "keras_dropact/training/backups.py",
           "        oldest_kept = kept[:KEEP][-1]", "        oldest_kept = kept[0]",
           ("tests/test_run_objects.py::test_backups_keep_the_latest_two_and_prune_the_rest",),
           "no backup to fall back to when the latest is damaged"),
    Mutant("backup-oldest-first", "keras_dropact/training/backups.py",
           "        return sorted(marks, reverse=True)", "        return sorted(marks)",
           ("tests/test_run_objects.py::test_a_backup_is_checked_field_by_field_before_it_is_loaded",
            "tests/test_run_objects.py::test_a_flipped_byte_anywhere_in_a_large_backup_is_refused"),
           "a resume replays from the older backup"),
    Mutant("backup-epoch-end-replay-ignored", "keras_dropact/training/backups.py",
           "        if state.before_epoch_end:", "        if False:",
           ("tests/test_run_objects.py::test_a_backup_at_an_epochs_last_step_is_replayed_from_the_one_before",),
           "a backup at an epoch's last step resumes into an endless epoch"),
    Mutant("resumed-stream-one-batch-late", "pipelines/__init__.py",
           "            start=start_step * replicas,", "            start=start_step * replicas + 1,",
           ("tests/test_run_safety.py::test_stream_resumes_at_any_batch",),
           "a resumed run skips a batch"),
    # --- export: keras_dropact/training/export.py, serving.py, run_files.py ----
    Mutant("serving-classes-8-9-swapped", "keras_dropact/training/serving.py",
           "        names = tf.constant(self.spec.class_names, tf.string)",
           "        names = tf.constant([*self.spec.class_names[:8], *self.spec.class_names[8:10][::-1],"
           " *self.spec.class_names[10:]], tf.string)",
           ("tests/test_export.py::test_every_class_and_top_k_position_of_a_model_of_known_answers",),
           "the serving graph calls an 8 a 9"),
    Mutant("serving-top-k-names-in-class-order", "keras_dropact/training/serving.py",
           '            "top_k_names": tf.gather(names, top.indices),',
           '            "top_k_names": tf.gather(names, tf.sort(top.indices)),',
           ("tests/test_export.py::test_every_class_and_top_k_position_of_a_model_of_known_answers",),
           "top-k names no longer follow top-k ids"),
    Mutant("export-check-compares-with-itself", "keras_dropact/training/export.py",
           "float(np.max(np.abs(outputs[k] - expected[k])))",
           "float(np.max(np.abs(outputs[k] - outputs[k])))",
           ("tests/test_export.py::test_an_export_whose_outputs_differ_through_one_signature_is_refused",),
           "export's own check passes any export"),
    Mutant("export-check-first-signature-only", "keras_dropact/training/export.py",
           "    for signature, x in inputs.items():",
           "    for signature, x in list(inputs.items())[:1]:",
           ("tests/test_export.py::test_an_export_whose_outputs_differ_through_one_signature_is_refused",),
           "a wrong image-bytes or normalised signature is published"),
    Mutant("export-removes-other-hosts-temporaries", "keras_dropact/training/run_files.py",
           '        if (match and match["host"] in (None, host) and name in (None, match["name"])',
           '        if (match and name in (None, match["name"])',
           ("tests/test_export.py::test_a_killed_export_leaves_no_version",),
           "an export deletes another machine's export in progress"),
    # --- publish and TensorBoard HParams: training/publish.py, hparams.py ---------
    Mutant("publish-check-skipped", "keras_dropact/training/publish.py",
           "    if not difference <= TOLERANCE:",
           "    if difference != difference:",
           ("tests/test_publish.py::test_a_folder_that_predicts_otherwise_is_not_published",),
           "a folder that predicts other values than the run's model is published"),
    Mutant("publish-over-a-folder-that-holds-files", "keras_dropact/training/publish.py",
           "    if os.path.lexists(out) and not run_files.is_empty_folder(out):",
           "    if os.path.lexists(out) and not os.path.isdir(out):",
           ("tests/test_publish.py::test_an_out_that_holds_something_or_a_bad_licence_is_refused",),
           "a user's folder is published into (or its files lost)"),
    Mutant("hparams-session-start-rewritten", "keras_dropact/training/hparams.py",
           "    if os.path.lexists(path):",
           "    if os.path.lexists(path) and False:",
           ("tests/test_hparams.py::test_a_resumed_run_keeps_the_one_session_it_started",),
           "a resumed run's session restarts (its start time, the dashboard's duration)"),
    # --- convert: keras_dropact/convert.py ------------------------------------
    Mutant("convert-skips-batch-norm", "keras_dropact/convert.py",
           "        if isinstance(old, keras.layers.Layer) and old.weights:",
           "        if isinstance(old, keras.layers.Layer) and old.weights"
           " and not isinstance(old, keras.layers.BatchNormalization):",
           ("tests/test_convert.py::test_batch_norm_statistics_and_weights_are_copied",),
           "converted models lose BatchNorm's statistics and weights"),
    Mutant("convert-trainable-weights-only", "keras_dropact/convert.py",
           "            new.set_weights(old.get_weights())",
           "            for target, source in zip(new.trainable_weights, old.trainable_weights):\n"
           "                target.assign(source)",
           ("tests/test_convert.py::test_batch_norm_statistics_and_weights_are_copied",),
           "converted models lose BatchNorm's moving statistics"),
    Mutant("convert-keep-probability-ignored", "keras_dropact/convert.py",
           '        p=state["p"],', "        p=DEFAULT_KEEP_PROBABILITY,",
           ("tests/test_convert.py::test_inference_is_leaky_relu_with_slope_1_minus_p",),
           "convert(model, p) converts with the default p"),
    Mutant("convert-fused-relu-dropped", "keras_dropact/convert.py",
           "        return outputs if follower is None else follower(outputs)",
           "        return outputs",
           ("tests/test_convert.py::test_nested_models_and_other_activations",),
           "a functional model's fused ReLU is removed, not replaced"),
    # --- the documentation: README.md, docs/ (tests/test_docs.py) -------------
    Mutant("readme-sampler-gpu", "README.md",
           'sampler="auto")(x)', 'sampler="gpu")(x)',
           ("tests/test_docs.py::test_the_examples_run_or_are_checked",),
           "the README shows a sampler that does not exist"),
    Mutant("guide-trainconfig-misspelt", "docs/guides/training.md",
           'results = train(TrainConfig(model="simple-cnn",',
           'results = train(TrainConfig(modle="simple-cnn",',
           ("tests/test_docs.py::test_the_examples_run_or_are_checked",),
           "the training guide's script fails with a TypeError"),
)


class Stale(ValueError):
    """A mutant whose `find` text is not in its file exactly once."""


def apply(mutant, root):
    """Writes `mutant` into the copy at `root`; returns the file's original text."""
    path = os.path.join(root, mutant.file)
    if not os.path.isfile(path):
        raise Stale(f"{mutant.name}: its file {mutant.file} does not exist")
    with open(path, encoding="utf-8") as f:
        original = f.read()
    count = original.count(mutant.find)
    if count != 1:
        raise Stale(f"{mutant.name}: its text occurs {count} times in {mutant.file}, not once")
    with open(path, "w", encoding="utf-8") as f:
        f.write(original.replace(mutant.find, mutant.replace))
    return original


def scratch_copy(source, target):
    """Copies the files git tracks or would track (untracked, not ignored)
    of `source` into `target`, and links the package-dir folders."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=source, capture_output=True)
    if listing.returncode != 0:
        raise RuntimeError(f"git cannot list the files of {source!r}: {listing.stderr.decode().strip()}")
    for relative in filter(None, listing.stdout.decode().split("\0")):
        path = os.path.join(source, relative)
        if os.path.isfile(path) and not os.path.islink(path):
            os.makedirs(os.path.dirname(os.path.join(target, relative)), exist_ok=True)
            shutil.copy2(path, os.path.join(target, relative))
    for package, folder in package_dirs(target).items():
        link = os.path.join(target, *package.split("."))
        if os.path.isdir(os.path.join(target, folder)) and not os.path.exists(link):
            os.symlink(os.path.relpath(os.path.join(target, folder), os.path.dirname(link)), link)


def package_dirs(root):
    """{"keras_dropact.models": "models", ...} of pyproject.toml's [tool.setuptools.package-dir]."""
    path = os.path.join(root, "pyproject.toml")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        section = re.search(r"^\[tool\.setuptools\.package-dir\]\n(.*?)(?=^\[|\Z)", f.read(), re.M | re.S)
    return dict(re.findall(r'^"([\w.]+)" = "([\w./-]+)"$', section.group(1), re.M)) if section else {}


def _environment(root):
    """The environment in which Python imports the copy at `root` first."""
    path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1"}


def check_imports(root):
    """RuntimeError unless the copy's packages (pyproject's package-dir ones
    and their parents) import from the copy, not from an installed tree."""
    names = sorted({part for name in package_dirs(root) for part in (name.split(".")[0], name)})
    if not names:
        return
    code = "import importlib, sys\nfor name in sys.argv[1:]: print(importlib.import_module(name).__file__)"
    done = subprocess.run([sys.executable, "-c", code, *names], cwd=root, env=_environment(root),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the scratch copy's packages do not import:\n{done.stderr[-2000:]}")
    files = done.stdout.split()
    outside = [f for f in files if not os.path.realpath(f).startswith(os.path.realpath(root) + os.sep)]
    if outside:
        raise RuntimeError(f"the scratch copy imports {', '.join(outside)}, outside it")


def run_tests(root, tests, timeout=TIMEOUT):
    """Runs pytest on `tests` in `root`: (passed, seconds, the output's tail)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=root, env=_environment(root), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - start, f"timed out after {timeout} s"
    if done.returncode in (4, 5):  # A test that does not exist, or none collected.
        raise Stale(f"no test collected by {' '.join(tests)}: {done.stdout.strip()[-300:]}")
    return done.returncode == 0, time.perf_counter() - start, (done.stdout + done.stderr)[-2000:]


def run(mutants, source=ROOT, out=print, timeout=TIMEOUT):
    """Runs `mutants` on a scratch copy of `source`; returns {name: "caught" or "survived"}.

    Raises:
        Stale: a mutant does not apply, or names no test.
        RuntimeError: the named tests fail without any mutant.
    """
    with tempfile.TemporaryDirectory(prefix="dropact-mutants-") as scratch:
        scratch_copy(source, scratch)
        check_imports(scratch)
        for mutant in mutants:  # Every one applies, before anything runs.
            _write(scratch, mutant.file, apply(mutant, scratch))
        tests = sorted({test for mutant in mutants for test in mutant.tests})
        passed, seconds, output = run_tests(scratch, tests, timeout)
        if not passed:
            raise RuntimeError(f"the named tests fail without a mutant:\n{output}")
        out(f"unmutated: {len(tests)} test selections pass ({seconds:.0f} s)")
        results = {}
        for mutant in mutants:
            original = apply(mutant, scratch)
            try:
                passed, seconds, output = run_tests(scratch, mutant.tests, timeout)
            finally:
                _write(scratch, mutant.file, original)
            results[mutant.name] = "survived" if passed else "caught"
            out(f"{results[mutant.name]:8}  {mutant.name}  ({seconds:.0f} s){first_failure(output)}")
    return results


def first_failure(output):
    """' by TEST' for the first test that pytest's summary names as failed, else ''."""
    failed = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.M)
    return f" by {failed.group(1)}" if failed else ""


def _write(root, relative, text):
    with open(os.path.join(root, relative), "w", encoding="utf-8") as f:
        f.write(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    known = {mutant.name: mutant for mutant in MUTANTS}
    unknown = [name for name in args.names if name not in known]
    if unknown:
        parser.error(f"unknown mutants {', '.join(unknown)}; --list shows them")
    chosen = [known[name] for name in args.names] or list(MUTANTS)
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name}  [{mutant.file}]  {mutant.why}\n    " + "\n    ".join(mutant.tests))
        return 0
    # SIGTERM ends the run as Ctrl-C does: the pytest in progress is killed
    # and the scratch copy removed.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    start = time.perf_counter()
    try:
        results = run(chosen)
    except (Stale, RuntimeError) as error:
        print(f"mutants: error: {error}", file=sys.stderr)
        return 2
    survivors = [name for name, result in results.items() if result == "survived"]
    print(f"{len(results)} mutants, {len(results) - len(survivors)} caught, {len(survivors)} survived"
          f"{': ' + ', '.join(survivors) if survivors else ''} ({time.perf_counter() - start:.0f} s)")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
