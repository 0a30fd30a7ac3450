"""The JAX runtime: data parallelism with `keras.distribution`.

Keras 3 trains on several devices and machines through JAX and the public
`keras.distribution` API (the Keras team's answer to keras issue 20585,
which is why `MultiWorkerMirroredStrategy` needs a patch on TensorFlow):

- `keras.distribution.initialize()` joins the processes of a multi-host run
  (`jax.distributed.initialize`); it reads KERAS_DISTRIBUTION_JOB_ADDRESSES
  (the coordinator's host:port first, or all processes' addresses, comma
  separated), KERAS_DISTRIBUTION_NUM_PROCESSES and
  KERAS_DISTRIBUTION_PROCESS_ID. Every process runs the same command.
- `keras.distribution.DataParallel` replicates the variables on every device
  of every process and splits the batch dimension over them. Each step is
  one XLA program over the *global* batch, so BatchNorm statistics, the loss
  mean and the gradients are those of single-device training on that batch.

The Drop-Activation masks need nothing special: `keras.random` draws over
the global batch shape inside the step, so every example of every device
and host gets its own mask (JAX's partitionable threefry gives the same
numbers as on one device). TensorFlow only feeds the data here.
"""

import contextlib
import os

import jax
import keras

from keras_dropact.training.runtime import Runtime

# keras.distribution.initialize() reads these (Keras 3 documents them there).
ENV_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"


def _hide_gpus_from_tensorflow():
    """TensorFlow only feeds data here: keep it off the GPUs JAX uses.

    Without this, TensorFlow (imported for tf.data) reserves most of every
    GPU's memory before JAX allocates anything.
    """
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices.
        pass


def initialize_processes():
    """Joins a multi-process run when the KERAS_DISTRIBUTION_* variables name one.

    Returns the number of processes. Does nothing (and returns the count)
    once JAX's distributed runtime is up, so that several runs in one
    process share it.
    """
    requested = int(os.environ.get(ENV_NUM_PROCESSES, "1"))
    if requested > 1 and not jax.distributed.is_initialized():
        if ENV_ADDRESSES not in os.environ or ENV_PROCESS_ID not in os.environ:
            raise ValueError(
                f"{ENV_NUM_PROCESSES}={requested} needs {ENV_ADDRESSES} (the "
                f"coordinator's host:port) and {ENV_PROCESS_ID} (0 to "
                f"{requested - 1}) too."
            )
        keras.distribution.initialize()
    return jax.process_count()


def make(name):
    """The JAX runtime called `name` (checked by `strategies.make`).

    auto: data-parallel when there is more than one device or process, else
    none. data-parallel: `keras.distribution.DataParallel` over all devices
    of all processes (GPUs/TPUs, or the CPU devices that
    `XLA_FLAGS=--xla_force_host_platform_device_count=N` creates).
    """
    _hide_gpus_from_tensorflow()
    num_processes = initialize_processes()
    devices = keras.distribution.list_devices()
    if name == "auto":
        name = "data-parallel" if len(devices) > 1 or num_processes > 1 else "none"
    if name == "none":
        if num_processes > 1:
            raise ValueError(
                f"{num_processes} processes joined the run, but --strategy none "
                "trains on one device. Use --strategy data-parallel (or auto)."
            )
        return JaxRuntime()
    return JaxRuntime(
        keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    )


class JaxRuntime(Runtime):
    """Training on the JAX backend on one device, or data parallel on several.

    Process 0 writes the run directory. Data parallel steps need every batch
    to split evenly over the devices, so every pass drops its remainder.

    Args:
        data_parallel: a `keras.distribution.DataParallel` over every device
            of every process, or None for plain single-device training.
    """

    def __init__(self, data_parallel=None):
        self.data_parallel = data_parallel
        self.name = "none" if data_parallel is None else "data-parallel"
        self.num_processes = jax.process_count()
        self.process_id = jax.process_index()
        self.is_chief = self.process_id == 0
        self.task = f"process{self.process_id}"
        self.drop_remainder = data_parallel is not None
        self.num_replicas = (
            1 if data_parallel is None else data_parallel.device_mesh.devices.size
        )

    @property
    def input_layout(self):
        # One pipeline per process, each batching its process's share.
        return self.num_processes, self.num_processes

    def scope(self):
        if self.data_parallel is None:
            return contextlib.nullcontext()
        return self.data_parallel.scope()

    def distribute(self, dataset_fn):
        """This process's pipeline: its shard of the examples, its share of the batch.

        `dataset_fn(input_context)` reads shard `process_id` of
        `num_processes` and batches global_batch / num_processes examples;
        Keras assembles the processes' batches into one global batch
        (`jax.make_array_from_process_local_data`).
        """
        import tensorflow as tf

        context = tf.distribute.InputContext(
            num_input_pipelines=self.num_processes,
            input_pipeline_id=self.process_id,
            num_replicas_in_sync=self.num_processes,
        )
        dataset = dataset_fn(context)
        return dataset.repeat() if self.num_processes > 1 else dataset

    def has_gpu(self):
        return any(device.platform == "gpu" for device in jax.devices())
