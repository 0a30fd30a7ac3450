"""Training on several devices and machines: `tf.distribute` or `keras.distribution`.

`dropact train --strategy auto|none|mirrored|multiworker` runs the same
`model.fit` on one device, on all GPUs of a host (MirroredStrategy) or on a
cluster described by TF_CONFIG (MultiWorkerMirroredStrategy) on the
TensorFlow backend. On the JAX backend `--strategy auto|none|data-parallel`
uses `keras.distribution.DataParallel` over all devices of all processes
(`jax_distribution.py`), the supported path for several machines. This module
holds everything `train.py` needs for that, for both backends:

- `resolve(name)` picks the strategy;
- `distribute(strategy, dataset_fn)` feeds per-replica batches, each worker
  reading its own shard of the examples, and `steps(...)` says how many
  steps make an epoch;
- `is_chief(strategy)` and `worker_run_dir(...)`: only the chief writes the
  run directory, the other workers write into a temporary copy;
- `allow_multi_worker_fit(model, strategy)` works around two bugs of Keras
  3.15 that make `model.fit` fail under MultiWorkerMirroredStrategy (only on
  the Keras versions it was tested with).

The batch size is always the *global* batch: with N replicas each replica
sees batch_size / N examples and the gradients are averaged over all of
them, so a run gives the same updates on 1 device or on N (up to float
summation order). When you change the global batch instead, scale the
learning rate with it (linear scaling, Goyal et al. 2017: lr * B / B_recipe,
with a few epochs of warm-up for large factors); see docs/distributed.md.
"""

import contextlib
import json
import os
import shutil
import tempfile
import types
import warnings

import keras

from keras_dropact.training import jax_distribution
from keras_dropact.training.jax_distribution import JaxDataParallel

STRATEGIES = ("auto", "none", "mirrored", "multiworker", "data-parallel")
TF_STRATEGIES = ("mirrored", "multiworker")
JAX_STRATEGIES = ("data-parallel",)
TRAINING_BACKENDS = ("tensorflow", "jax")
# Keras versions whose private Trainer methods `allow_multi_worker_fit`
# replaces were read and tested (keras issue 20585).
MULTI_WORKER_PATCH_TESTED = ("3.15.",)


def _tf_config():
    return json.loads(os.environ.get("TF_CONFIG", "{}"))


def num_workers_in_tf_config():
    cluster = _tf_config().get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def resolve(name):
    """The strategy called `name`.

    On JAX: `jax_distribution.resolve(name)`. On TensorFlow, auto:
    MultiWorkerMirroredStrategy when TF_CONFIG names several workers,
    MirroredStrategy when several GPUs are visible, else the default
    (single-device) strategy. mirrored: all GPUs of this host, or all its
    logical CPU devices when it has no GPU. Create the strategy before any other
    TensorFlow work: MultiWorkerMirroredStrategy configures the runtime.
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}. Valid strategies: {', '.join(STRATEGIES)}."
        )
    backend = keras.backend.backend()
    if backend not in TRAINING_BACKENDS:
        raise ValueError(
            f"dropact train runs on the {' and '.join(TRAINING_BACKENDS)} backends, "
            f"not {backend!r}: set KERAS_BACKEND=jax or KERAS_BACKEND=tensorflow "
            "(or pass --backend)."
        )
    if backend == "jax":
        if name in TF_STRATEGIES:
            raise ValueError(
                f"--strategy {name} is a tf.distribute strategy and needs the "
                "TensorFlow backend (KERAS_BACKEND=tensorflow or --backend "
                "tensorflow). On JAX use --strategy data-parallel "
                "(keras.distribution.DataParallel)."
            )
        return jax_distribution.resolve(name)
    if name in JAX_STRATEGIES:
        raise ValueError(
            f"--strategy {name} is keras.distribution.DataParallel and needs the JAX "
            "backend (KERAS_BACKEND=jax or --backend jax). On TensorFlow use "
            "--strategy mirrored or multiworker."
        )
    import tensorflow as tf

    if name == "auto":
        if num_workers_in_tf_config() > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "none"
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        # All GPUs; on a host without GPUs, all logical CPU devices (one
        # unless configured, as the tests and benchmarks do).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.get_strategy()


def is_multi_worker(strategy):
    """True when the tf.distribute `strategy` spans several worker processes."""
    if isinstance(strategy, JaxDataParallel):
        return False
    import tensorflow as tf

    return isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and strategy.extended._in_multi_worker_mode()


def is_chief(strategy):
    """True for the one process that writes the run directory.

    The chief is the "chief" task of TF_CONFIG, or worker 0 when the cluster
    has no chief task; a single-worker run is always its own chief.
    """
    if isinstance(strategy, JaxDataParallel):
        return strategy.is_chief
    if not is_multi_worker(strategy):
        return True
    task_type = strategy.cluster_resolver.task_type
    task_id = strategy.cluster_resolver.task_id
    return task_type == "chief" or (
        task_type == "worker"
        and task_id == 0
        and "chief" not in _tf_config().get("cluster", {})
    )


@contextlib.contextmanager
def worker_run_dir(run_dir, strategy, copy=("backup",)):
    """The directory this process writes the run into, as a context manager.

    The chief writes `run_dir` itself. Every other worker must still run the
    same callbacks (saving reads synchronised variables, which is a
    collective operation all workers join), so it writes into a temporary
    directory, removed on exit. The entries of `run_dir` named in `copy`
    (the resume backup) are copied into it first, so that a resumed run
    restores the same state on every worker; this needs `run_dir` on a
    filesystem all workers can read.
    """
    if is_chief(strategy):
        yield run_dir
        return
    if isinstance(strategy, JaxDataParallel):
        task = f"process{strategy.process_id}"
    else:
        task = f"{strategy.cluster_resolver.task_type}{strategy.cluster_resolver.task_id}"
    temporary = tempfile.mkdtemp(prefix=f"dropact-{task}-")
    try:
        for name in copy:
            source = os.path.join(run_dir, name)
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(temporary, name))
        yield temporary
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def distribute(strategy, dataset_fn):
    """Per-replica batches from `dataset_fn(input_context)`, for `model.fit`.

    `dataset_fn` builds one input pipeline: it reads shard
    `input_context.input_pipeline_id` of `input_context.num_input_pipelines`
    (one pipeline per worker, so every example is read by exactly one
    worker per epoch) and batches
    `input_context.get_per_replica_batch_size(global_batch_size)` examples.
    `pipelines.dataset_fn` builds such a function.

    With several workers each pipeline is repeated forever and `fit` must be
    given `steps(...)` steps per epoch: workers whose shards end at
    different steps would issue mismatched collectives and abort ("Collective
    instance ... expected type ..."), and one that stops early leaves the
    others waiting.

    On JAX, `JaxDataParallel.distribute` does the same per process.
    """
    if isinstance(strategy, JaxDataParallel):
        return strategy.distribute(dataset_fn)
    if is_multi_worker(strategy):
        return strategy.distribute_datasets_from_function(
            lambda input_context: dataset_fn(input_context).repeat()
        )
    return strategy.distribute_datasets_from_function(dataset_fn)


def steps(strategy, num_examples, global_batch_size, requested=None):
    """Steps per epoch for `fit` (or `evaluate`) on data from `distribute`.

    `requested` (e.g. `--steps-per-epoch`) wins. Otherwise None (run until
    the data ends) on one worker, and one pass over the examples,
    ceil(num_examples / global_batch_size), with several workers. The
    workers' shards differ by at most one example, so each worker then
    reads its shard once per epoch, give or take one batch when the shard
    sizes straddle a batch boundary.
    """
    if requested is not None:
        return requested
    if isinstance(strategy, JaxDataParallel) and strategy.num_processes > 1:
        return num_examples // global_batch_size  # The batches drop their remainder.
    if not is_multi_worker(strategy):
        return None
    return -(-num_examples // global_batch_size)


def input_layout(strategy):
    """`(pipelines, replicas)`: the input contexts `distribute` gives `dataset_fn`.

    `dataset_fn` batches global_batch / replicas examples in each of the
    `pipelines` pipelines (one per worker or process).
    """
    if isinstance(strategy, JaxDataParallel):
        return strategy.num_processes, strategy.num_processes
    if is_multi_worker(strategy):
        return num_workers_in_tf_config(), strategy.num_replicas_in_sync
    return 1, strategy.num_replicas_in_sync


def run_scope(strategy):
    """The scope `fit` and `evaluate` must run in: JAX's distribution scope.

    A tf.distribute model remembers the strategy it was built under; a JAX
    model trains data parallel only while its distribution is set.
    """
    if isinstance(strategy, JaxDataParallel):
        return strategy.scope()
    return contextlib.nullcontext()


def drop_remainder(strategy):
    """True when every batch must have the full global batch size (JAX data parallel)."""
    return isinstance(strategy, JaxDataParallel) and strategy.drop_remainder


def describe(strategy):
    """How the run is distributed, for `results.json`."""
    if isinstance(strategy, JaxDataParallel):
        return strategy.describe()
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "multiworker"
    elif isinstance(strategy, tf.distribute.MirroredStrategy):
        name = "mirrored"
    else:
        name = "none"
    return {
        "strategy": name,
        "replicas": strategy.num_replicas_in_sync,
        "processes": (
            max(num_workers_in_tf_config(), 1) if is_multi_worker(strategy) else 1
        ),
    }


def has_gpu():
    """True when the backend's training devices include a GPU."""
    if keras.backend.backend() == "jax":
        return jax_distribution.has_gpu()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def allow_multi_worker_fit(model, strategy):
    """Lets `model.fit`/`evaluate` run under multi-worker MultiWorkerMirroredStrategy.

    Keras 3.15 (keras-team/keras#20585) fails there twice:

    1. `Trainer._maybe_symbolic_build` reduces a whole input batch with
       `strategy.reduce("MEAN", batch)` only to learn its shapes and
       dtypes; under MultiWorkerMirroredStrategy that reduce raises
       "Attempt to convert a value (PerReplica...)". The patch takes the
       local replica's batch instead: only its spec is used.
    2. `reduce_per_replica(..., "auto")` reduces each step's logs with
       `strategy.reduce("MEAN", value, axis=0)`, which fails for the scalar
       loss and metrics ("Invalid reduction dimension 0 for input with 0
       dimensions"). The patched train/test steps return every log value
       with shape [1], so the axis-0 reduce becomes the mean over all
       replicas of all workers: the same value MirroredStrategy logs.

    Only this model instance is patched (bound methods set on the object);
    its class, config and saved files are unchanged. Does nothing unless
    `strategy` spans several workers. Call it after `model.compile`.

    The patch replaces private Keras methods, so it is tied to the Keras
    versions in `MULTI_WORKER_PATCH_TESTED`: other versions get a warning (or
    an error when the methods are gone) pointing to the supported path for
    several machines, the JAX backend with `--strategy data-parallel`.
    """
    if not is_multi_worker(strategy):
        return model
    _check_patchable_keras(model)
    import tensorflow as tf

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0],
                    next(batches),
                )
                break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def with_rank_one_logs(step):
        def patched_step(data):
            return tf.nest.map_structure(lambda value: tf.reshape(value, [1]), step(data))

        return patched_step

    model._maybe_symbolic_build = types.MethodType(maybe_symbolic_build, model)
    model.train_step = with_rank_one_logs(model.train_step)
    model.test_step = with_rank_one_logs(model.test_step)
    return model


def _check_patchable_keras(model):
    jax_path = (
        "The supported path for several machines is the JAX backend: "
        "KERAS_BACKEND=jax dropact train --strategy data-parallel (see "
        "docs/distributed.md)."
    )
    missing = [
        name for name in ("_maybe_symbolic_build", "_symbolic_build", "train_step", "test_step")
        if not hasattr(model, name)
    ]
    if missing:
        raise RuntimeError(
            f"Keras {keras.__version__} has no {', '.join(missing)}: the multi-worker "
            f"workaround for keras issue 20585 cannot run. {jax_path}"
        )
    if not keras.__version__.startswith(MULTI_WORKER_PATCH_TESTED):
        warnings.warn(
            f"allow_multi_worker_fit replaces private Keras methods and was tested with "
            f"Keras {', '.join(v + 'x' for v in MULTI_WORKER_PATCH_TESTED)}, not "
            f"{keras.__version__}; multi-worker results may be wrong. {jax_path}",
            stacklevel=3,
        )


def local_tf_configs(num_workers):
    """`TF_CONFIG` values (JSON strings) for a cluster of workers on this host.

    Start one process per value, each with its own `TF_CONFIG`, to try
    multi-worker training on one machine (tests and `benchmarks/scaling.py`
    do). The ports are free loopback ports at the time of the call.
    """
    import socket

    sockets = [socket.socket() for _ in range(num_workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    return [
        json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        for index in range(num_workers)
    ]
