"""The TensorFlow runtime: `tf.distribute` strategies.

`dropact train --strategy auto|none|mirrored|multiworker` runs the same
`model.fit` on one device, on all GPUs of a host (MirroredStrategy) or on a
cluster described by TF_CONFIG (MultiWorkerMirroredStrategy). Keras 3.15
cannot `fit` under MultiWorkerMirroredStrategy (keras issue 20585):
`TensorFlowRuntime.prepare` patches the model for it, on the Keras versions
the patch was tested with (`MULTI_WORKER_PATCH_TESTED`).
"""

import json
import types
import warnings

import keras
import tensorflow as tf

from keras_dropact.training.runtime import Runtime

# Keras versions whose private Trainer methods `allow_multi_worker_fit`
# replaces were read and tested (keras issue 20585).
MULTI_WORKER_PATCH_TESTED = ("3.15.",)


def _num_workers(cluster_resolver):
    """Worker processes (chief included) in a cluster; 0 without a cluster."""
    jobs = cluster_resolver.cluster_spec().as_dict()
    return len(jobs.get("worker", [])) + len(jobs.get("chief", []))


def make(name):
    """The strategy called `name` (checked by `strategies.make`), as a runtime.

    auto: MultiWorkerMirroredStrategy when TF_CONFIG names several workers,
    MirroredStrategy when several GPUs are visible, else the default
    (single-device) strategy. mirrored: all GPUs of this host, or all its
    logical CPU devices when it has no GPU.
    """
    if name == "auto":
        if _num_workers(tf.distribute.cluster_resolver.TFConfigClusterResolver()) > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "none"
    if name == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "mirrored":
        # All GPUs; on a host without GPUs, all logical CPU devices (one
        # unless configured, as the tests and benchmarks do).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        strategy = tf.distribute.MirroredStrategy([device.name for device in devices])
    else:
        strategy = tf.distribute.get_strategy()
    return TensorFlowRuntime(strategy, name)


class TensorFlowRuntime(Runtime):
    """A run under one `tf.distribute` strategy.

    Only the chief (`strategy.extended.should_checkpoint`: the "chief" task
    of TF_CONFIG, or worker 0 when there is none) writes the run directory.
    """

    def __init__(self, strategy, name):
        self.strategy = strategy
        self.name = name
        self.num_replicas = strategy.num_replicas_in_sync
        self.is_chief = strategy.extended.should_checkpoint
        if name == "multiworker":  # One worker (no TF_CONFIG) trains as one process.
            resolver = strategy.cluster_resolver
            self.num_processes = max(_num_workers(resolver), 1)
            self.task = f"{resolver.task_type}{resolver.task_id}"

    def scope(self):
        return self.strategy.scope()

    def distribute(self, dataset_fn):
        if self.num_processes > 1:
            return self.strategy.distribute_datasets_from_function(
                lambda input_context: dataset_fn(input_context).repeat()
            )
        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def has_gpu(self):
        return bool(tf.config.list_physical_devices("GPU"))

    def prepare(self, model):
        """Evaluation that takes empty replica batches (`skip_empty_batches`)
        with several replicas; the multi-worker `fit` patch
        (`allow_multi_worker_fit`) with several processes."""
        if self.num_replicas > 1:
            skip_empty_batches(model)
        if self.num_processes > 1:
            allow_multi_worker_fit(model, self.strategy)
        return model


def skip_empty_batches(model):
    """Lets `model.evaluate` (and `fit`'s validation) give a replica no examples.

    A finite dataset shared by several replicas leaves the replicas of its
    last step only the remainder: with 360 test examples, a global batch
    of 32 and 2 replicas, one replica's last batch holds 0 examples. A
    Conv2D on 0 examples returns a tensor of the wrong shape on CPUs
    (oneDNN gives [0, H, W, C_in]: "Incompatible shapes" in the next
    layer; measured with TensorFlow 2.21), and cuDNN has rejected a 0
    dimension on GPUs (tensorflow issue 14657; not checked here). Such a
    batch adds nothing to the metrics (they weigh each
    batch by its size), so the test step skips it: the same results, for
    any split size. Only this model instance's `test_step` is wrapped.
    """
    step = model.test_step

    def test_step(data):
        examples = tf.nest.flatten(data)[0]
        return tf.cond(tf.shape(examples)[0] > 0, lambda: step(data), model.get_metrics_result)

    model.test_step = test_step
    return model


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
    its class, config and saved files are unchanged. Call it after
    `model.compile`.

    The patch replaces private Keras methods, so it is tied to the Keras
    versions in `MULTI_WORKER_PATCH_TESTED`: other versions get a warning (or
    an error when the methods are gone) pointing to the supported path for
    several machines, the JAX backend with `--strategy data-parallel`.
    """
    _check_patchable_keras(model)

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
        "docs/guides/distributed.md)."
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
