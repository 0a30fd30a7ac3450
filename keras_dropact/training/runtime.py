"""`Runtime`: the devices and processes a run executes on.

Like `keras.distribution.Distribution`, a runtime is one device, several
devices or several processes, and what follows from them: which process
writes the run directory, how many replicas share a batch, how each
process is fed and how many steps make an epoch. `strategies.make` makes
one for the loaded backend: a `TensorFlowRuntime` (`tf.distribute`;
`tf_runtime.py`) or a `JaxRuntime` (`keras.distribution.DataParallel`;
`jax_runtime.py`). A run asks its runtime what it needs and never which
strategy it has, like Lightning's trainer asks its `Strategy`.

The batch size is always the *global* batch: with N replicas each replica
sees batch_size / N examples and the gradients are averaged over all of
them, so a run gives the same updates on 1 device or on N (up to float
summation order). When you change the global batch instead, scale the
learning rate with it (linear scaling, Goyal et al. 2017: lr * B / B_recipe,
with a few epochs of warm-up for large factors); see docs/guides/distributed.md.
"""


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
    task = "process0"  # Names this process's temporary run directory (`RunDir.writable`).

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

    def describe(self):
        """How the run is distributed, for `results.json`."""
        return {
            "strategy": self.name,
            "replicas": self.num_replicas,
            "processes": self.num_processes,
        }
