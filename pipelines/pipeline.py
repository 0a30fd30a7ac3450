"""Assembling a dataset: source -> cache -> shuffle -> batch -> augment -> prefetch.

The decoded split is cached once (raw uint8 images: a quarter of the float
size), shuffled per element with a full-split buffer, batched, then augmented
one whole batch per map call in parallel (num_parallel_calls=AUTOTUNE) and
prefetched.

Randomness: each batch is zipped with its own stateless seed taken from
`tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`, so every epoch
draws new augmentations and shuffles, while two pipelines built with the same
seed produce identical epochs, independent of map parallelism. Different input
pipelines of a distribution strategy fold their id into the seeds.

Training reads `Pipeline.stream` instead: an endless sequence of passes
whose batch i is a function of (seed, i) alone (pass k is shuffled with a
seed derived from (seed, k), its batch j augmented with one derived from
(seed, k, j)), so a stream started at batch i yields exactly what a stream
started at 0 yields from batch i on. That is what makes a resumed run read
the same batches, in the same order, with the same augmentations, as the
run it continues.
"""

import numpy as np
import tensorflow as tf

from keras_dropact.pipelines import augment as augment_lib
from keras_dropact.pipelines import registry

_SHUFFLE_STREAM, _AUGMENT_STREAM = 0, 1
_GRAPH_SEED = 1


def _derived_seed(seed, pipeline_id, stream):
    """A well-mixed 31-bit seed for one (seed, input pipeline, purpose)."""
    if seed is None:
        return None
    state = np.random.SeedSequence([seed, pipeline_id, stream]).generate_state(1)
    return int(state[0] >> 1)


def _pass_seed(seed, index):
    """A 62-bit int64 scalar seed for pass `index` (a tensor) of one stream."""
    return tf.random.stateless_uniform(
        [], tf.stack([tf.constant(seed, tf.int64), index]),
        minval=0, maxval=2**62, dtype=tf.int64,
    )


def batches_per_pass(num_examples, batch_size, drop_remainder=False):
    """Batches in one pass over `num_examples` examples."""
    if drop_remainder:
        return num_examples // batch_size
    return -(-num_examples // batch_size)


def stream_examples(num_examples, batch_size, start, stop, drop_remainder=False):
    """Examples in batches [start, stop) of a stream of passes over `num_examples`.

    Every batch holds `batch_size` examples except the last of each pass,
    which holds the rest (or is dropped with `drop_remainder`).
    """
    per_pass = batches_per_pass(num_examples, batch_size, drop_remainder)
    pass_examples = per_pass * batch_size if drop_remainder else num_examples

    def before(batch):  # Examples in batches [0, batch).
        passes, within = divmod(batch, per_pass)
        return passes * pass_examples + min(within * batch_size, pass_examples)

    return before(stop) - before(start)


def check_positive_int(name, value):
    """ValueError unless `value` is a positive int (bools are not ints here)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {value!r}.")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}.")


class Pipeline:
    """A validated request for one split; `build` makes the tf.data.Dataset.

    Validation happens in the constructor so that `dataset_fn` fails on the
    caller's thread, before a distribution strategy calls it per worker.
    `num_examples` is the number of examples it reads: the split's, or `take`.
    """

    def __init__(
        self,
        name,
        split,
        *,
        augment=None,
        data_dir=None,
        shuffle=None,
        seed=None,
        drop_remainder=False,
        cutout_size=None,
        download=True,
        image_size=None,
        channels=None,
        take=None,
    ):
        self.spec = registry.get(name, image_size, channels)
        registry.check_split(split)
        self.num_examples = self.spec.splits[split]
        if take is not None:
            check_positive_int("take", take)
            if take > self.num_examples:
                raise ValueError(
                    f"take={take} exceeds the {self.num_examples} examples of "
                    f"the {split!r} split of {self.spec.name}; use 1 to {self.num_examples}."
                )
            self.num_examples = int(take)
        if seed is not None and (
            isinstance(seed, bool)
            or not isinstance(seed, (int, np.integer))
            or seed < 0
        ):
            raise ValueError(f"seed must be None or an int >= 0, got {seed!r}.")
        self.split = split
        self.augmentation = augment_lib.get(augment)
        self.batch_fn = augment_lib.make_batch_fn(
            self.spec, self.augmentation, cutout_size
        )
        self.data_dir = data_dir
        self.shuffle = split == "train" if shuffle is None else bool(shuffle)
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.download = download

    def shard_size(self, num_pipelines=1, pipeline_id=0):
        """Examples in shard `pipeline_id` of `num_pipelines` (Dataset.shard)."""
        return len(range(pipeline_id, self.num_examples, num_pipelines))

    def _cached_shard(self, num_pipelines, pipeline_id):
        spec = self.spec
        dataset = spec.loader(
            spec, self.split, data_dir=self.data_dir, download=self.download
        )
        if self.num_examples < spec.splits[self.split]:
            dataset = dataset.take(self.num_examples)  # The first N, before sharding.
        if num_pipelines > 1:
            dataset = dataset.shard(num_pipelines, pipeline_id)
        return dataset.cache()

    def stream(self, batch_size, start=0, num_pipelines=1, pipeline_id=0):
        """An endless dataset of batches: pass after pass, from batch `start` on.

        Batch i of the stream depends only on (seed, pipeline_id, i): pass k
        (of `batches_per_pass` batches) is shuffled with a seed derived from
        (seed, pipeline_id, k) and its batch j augmented with one derived
        from (seed, pipeline_id, k, j). A stream built with `start=i` thus
        yields exactly the batches i, i+1, ... of the stream built with
        `start=0`; the skipped batches of the first pass are neither
        augmented nor normalised. Needs an int `seed`.
        """
        check_positive_int("batch_size", batch_size)
        if self.seed is None:
            raise ValueError("A stream needs an int seed, got None.")
        shard_size = self.shard_size(num_pipelines, pipeline_id)
        per_pass = batches_per_pass(shard_size, batch_size, self.drop_remainder)
        if per_pass < 1:
            raise ValueError(
                f"batch_size {batch_size} exceeds the {shard_size} "
                f"examples of the {self.split!r} shard with drop_remainder."
            )
        first_pass, skip = divmod(int(start), per_pass)
        dataset = (
            tf.data.Dataset.range(first_pass, 2**62)
            .flat_map(self._one_pass_fn(batch_size, num_pipelines, pipeline_id))
            .skip(skip)
        )
        return self._prepared_stream(dataset, pipeline_id)

    def _one_pass_fn(self, batch_size, num_pipelines, pipeline_id):
        """`one_pass(k)`: the (k, j, batch) of pass k over this shard, shuffled by pass."""
        shard = self._cached_shard(num_pipelines, pipeline_id)
        buffer_size = self.shard_size(num_pipelines, pipeline_id)
        shuffle_seed = _derived_seed(self.seed, pipeline_id, _SHUFFLE_STREAM)
        shuffle, drop_remainder = self.shuffle, self.drop_remainder

        def one_pass(index):
            # Traced in a graph, this sets that graph's seed only: the
            # shuffle depends on the pass seed alone, not on the caller's
            # global seed (whose value 0 would also break a tensor op seed).
            tf.random.set_seed(_GRAPH_SEED)
            data = shard
            if shuffle:
                data = data.shuffle(
                    buffer_size, seed=_pass_seed(shuffle_seed, index),
                    reshuffle_each_iteration=False,
                )
            data = data.batch(batch_size, drop_remainder=drop_remainder)
            return data.enumerate().map(lambda j, batch: (index, j, batch))

        return one_pass

    def _prepared_stream(self, dataset, pipeline_id):
        """The (k, j, batch) stream augmented (seeded by (k, j)), normalised, prefetched."""
        batch_fn = self.batch_fn
        if self.augmentation.is_random:
            augment_seed = _derived_seed(self.seed, pipeline_id, _AUGMENT_STREAM)

            def augment(index, j, batch):
                seed = tf.random.experimental.stateless_fold_in(
                    tf.stack([tf.constant(augment_seed, tf.int64), index]), j
                )
                return batch_fn(*batch, seed)

            dataset = dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            dataset = dataset.map(
                lambda index, j, batch: batch_fn(*batch),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        return dataset.prefetch(tf.data.AUTOTUNE)

    def build(self, batch_size, num_pipelines=1, pipeline_id=0):
        """The batched dataset of (float32 images, int32 labels).

        `num_pipelines`/`pipeline_id` shard the examples (one shard per
        input pipeline of a distribution strategy) and separate the seeds.
        """
        check_positive_int("batch_size", batch_size)
        dataset = self._cached_shard(num_pipelines, pipeline_id)
        if self.shuffle:
            dataset = dataset.shuffle(
                buffer_size=self.num_examples,
                seed=_derived_seed(self.seed, pipeline_id, _SHUFFLE_STREAM),
                reshuffle_each_iteration=True,
            )
        dataset = dataset.batch(batch_size, drop_remainder=self.drop_remainder)
        if self.augmentation.is_random:
            seeds = tf.data.Dataset.random(
                seed=_derived_seed(self.seed, pipeline_id, _AUGMENT_STREAM),
                rerandomize_each_iteration=True,
            ).batch(2)
            batch_fn = self.batch_fn
            dataset = tf.data.Dataset.zip((dataset, seeds)).map(
                lambda batch, seed: batch_fn(*batch, seed),
                num_parallel_calls=tf.data.AUTOTUNE,
            )
        else:
            dataset = dataset.map(self.batch_fn, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE)
