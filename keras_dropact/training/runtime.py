"""Where a run executes: one device, several devices, several processes.

`make(strategy)` is the one place in `training/` that asks which Keras
backend is loaded (as Keras picks its trainer once, in
`keras/src/models/model.py`). It returns a `Runtime`: a `TensorFlowRuntime`
(`tf.distribute`: the default strategy, MirroredStrategy,
MultiWorkerMirroredStrategy; `tf_runtime.py`) or a `JaxRuntime`
(`keras.distribution.DataParallel`; `jax_runtime.py`). A run asks its
runtime what it needs (who writes the run directory, how many replicas
share a batch, how to feed them, how many steps make an epoch) and never
which strategy it has, like Lightning's trainer asks its `Strategy`.

The batch size is always the *global* batch: with N replicas each replica
sees batch_size / N examples and the gradients are averaged over all of
them, so a run gives the same updates on 1 device or on N (up to float
summation order). When you change the global batch instead, scale the
learning rate with it (linear scaling, Goyal et al. 2017: lr * B / B_recipe,
with a few epochs of warm-up for large factors); see docs/guides/distributed.md.
"""

import contextlib
import hashlib
import os
import shutil
import tempfile

import keras

# Every --strategy, and the backend it needs (None: either).
STRATEGIES = {
    "auto": None,
    "none": None,
    "mirrored": "tensorflow",
    "multiworker": "tensorflow",
    "data-parallel": "jax",
}
_BACKENDS = {
    "tensorflow": {"label": "TensorFlow", "kind": "a tf.distribute strategy", "note": ""},
    "jax": {
        "label": "JAX",
        "kind": "keras.distribution.DataParallel",
        "note": " (keras.distribution.DataParallel)",
    },
}
# The Keras backends a run trains on (--backend, `TrainConfig.backend`).
BACKENDS = tuple(_BACKENDS)


def _check_strategy(name, backend):
    """ValueError unless `--strategy name` exists and runs on `backend`."""
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}. Valid strategies: {', '.join(STRATEGIES)}."
        )
    if backend not in _BACKENDS:
        raise ValueError(
            f"dropact train runs on the {' and '.join(_BACKENDS)} backends, not "
            f"{backend!r}: set KERAS_BACKEND=jax or KERAS_BACKEND=tensorflow "
            "(or pass --backend)."
        )
    needed = STRATEGIES[name]
    if needed not in (None, backend):
        here = _BACKENDS[backend]
        alternatives = " or ".join(n for n, wants in STRATEGIES.items() if wants == backend)
        raise ValueError(
            f"--strategy {name} is {_BACKENDS[needed]['kind']} and needs the "
            f"{_BACKENDS[needed]['label']} backend (KERAS_BACKEND={needed} or --backend "
            f"{needed}). On {here['label']} use --strategy {alternatives}{here['note']}."
        )


def make(strategy="auto"):
    """The runtime for `--strategy strategy` on the loaded Keras backend.

    Make it before any other TensorFlow work: MultiWorkerMirroredStrategy
    configures the TensorFlow runtime, `keras.distribution.initialize` JAX's.

    Raises:
        ValueError: an unknown strategy, one of the other backend, or a
            backend that does not train (the message names the choices).
    """
    backend = keras.backend.backend()
    _check_strategy(strategy, backend)
    if backend == "jax":
        from keras_dropact.training import jax_runtime

        return jax_runtime.make(strategy)
    from keras_dropact.training import tf_runtime

    return tf_runtime.make(strategy)


def _not_backups(folder, names):
    """The names of `names` that are no backup file (`shutil.copytree`'s `ignore`)."""
    from keras_dropact.training.backups import is_backup_file

    return [name for name in names if not is_backup_file(name)]


class Runtime:
    """What a run needs from the devices and processes it runs on.

    Subclasses set `name` (the resolved --strategy), `num_replicas` (the
    replicas that share each global batch), `num_processes` and
    `is_chief`, and implement `scope`, `distribute` and `has_gpu`.

    Attributes:
        is_chief: True for the one process that writes the run directory.
        drop_remainder: every batch must hold the full global batch.
        input_layout: `(pipelines, replicas)` of the input contexts that
            `distribute` hands `dataset_fn`: `pipelines` input pipelines
            (one per process) batch global_batch / replicas examples.
    """

    name = "none"
    num_replicas = 1
    num_processes = 1
    is_chief = True
    drop_remainder = False
    task = "process0"  # Names this process's temporary directory.

    @property
    def input_layout(self):
        return self.num_processes, self.num_replicas

    def scope(self):
        """The scope a model is built, restored, trained and evaluated in."""
        raise NotImplementedError

    def distribute(self, dataset_fn):
        """Per-replica batches from `dataset_fn(input_context)`, for `fit`.

        `dataset_fn` (see `pipelines.dataset_fn`) builds one input pipeline:
        shard `input_context.input_pipeline_id` of
        `input_context.num_input_pipelines` (every example is read by one
        process per epoch), batches of
        `input_context.get_per_replica_batch_size(global_batch_size)`. With
        several processes every pipeline repeats and `fit`/`evaluate` must
        be given `steps(...)` steps: processes whose shards end at different
        steps would issue mismatched collectives, and one that stops early
        leaves the others waiting.
        """
        raise NotImplementedError

    def has_gpu(self):
        """True when the training devices include a GPU."""
        raise NotImplementedError

    def prepare(self, model):
        """Readies a compiled `model` for `fit` here; returns it."""
        return model

    def steps_per_epoch(self, num_examples, global_batch_size):
        """Optimizer steps in one pass over `num_examples` examples."""
        from keras_dropact import pipelines

        return pipelines.batches_per_pass(num_examples, global_batch_size, self.drop_remainder)

    def steps(self, num_examples, global_batch_size):
        """The steps `fit`/`evaluate` take for one pass over data from `distribute`.

        None (the data ends by itself) in one process; with several, whose
        pipelines repeat, `steps_per_epoch(...)`: the shards differ by at
        most one example, so each process reads its shard once, give or
        take one batch when the shard sizes straddle a batch boundary.
        """
        if self.num_processes == 1:
            return None
        return self.steps_per_epoch(num_examples, global_batch_size)

    def examples(self, num_examples, global_batch_size, first_step, stop_step):
        """Examples read in global steps [first_step, stop_step) of the
        `pipelines.stream_fn` data over a split of `num_examples` examples
        that `distribute` feeds."""
        from keras_dropact import pipelines

        num_pipelines, num_replicas = self.input_layout
        return pipelines.stream_examples(
            num_examples, global_batch_size, first_step, stop_step,
            num_pipelines=num_pipelines, num_replicas=num_replicas,
            drop_remainder=self.drop_remainder,
        )

    def mixed_precision_policy(self):
        """`--mixed-precision`: float16 on GPUs, bfloat16 elsewhere."""
        return "mixed_float16" if self.has_gpu() else "mixed_bfloat16"

    @contextlib.contextmanager
    def deterministic(self, enabled):
        """`--deterministic` for the `with` block: TensorFlow's op determinism.

        It makes the TensorFlow ops deterministic: the input pipelines on
        both backends, and the training steps on TensorFlow.
        """
        if not enabled:
            yield
            return
        import tensorflow as tf
        from tensorflow.python.framework import config as tf_config  # is_/disable_: not public.

        was_enabled = tf_config.is_op_determinism_enabled()
        tf.config.experimental.enable_op_determinism()
        try:
            yield
        finally:
            if not was_enabled:
                tf_config.disable_op_determinism()

    @contextlib.contextmanager
    def writable_dir(self, run_dir, copy=("backup",)):
        """The directory this process writes the run into, as a context manager.

        The chief writes `run_dir` itself. Every other process must still
        run the same callbacks (saving reads synchronised variables, which
        is a collective operation all processes join), so it writes into a
        temporary directory, removed on exit. The entries of `run_dir` named
        in `copy` (the backups) are copied into it first, so that a resumed
        run restores the same state everywhere; this needs `run_dir` on a
        filesystem all processes can read.

        The temporary directory has one name per run and task
        (`temporary_dir`): a process killed by SIGKILL cannot remove its
        copy (as large as the backups), and the next process of that run
        and task removes it before it starts.
        """
        if self.is_chief:
            yield run_dir
            return
        temporary = self.temporary_dir(run_dir)
        shutil.rmtree(temporary, ignore_errors=True)  # A killed process' leftovers.
        os.makedirs(temporary)
        try:
            for name in copy:
                source = os.path.join(run_dir, name)
                if os.path.isdir(source):
                    # Backups only: the chief may be removing a killed
                    # process' temporary files (`RunDir.remove_temporaries`).
                    shutil.copytree(source, os.path.join(temporary, name), ignore=_not_backups)
            yield temporary
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def temporary_dir(self, run_dir):
        """`TMPDIR/dropact-TASK-HASH`: this task's temporary directory for
        the run in `run_dir` (HASH: of its absolute path)."""
        digest = hashlib.sha256(os.path.abspath(run_dir).encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"dropact-{self.task}-{digest}")

    def describe(self):
        """How the run is distributed, for `results.json`."""
        return {
            "strategy": self.name,
            "replicas": self.num_replicas,
            "processes": self.num_processes,
        }
