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
"""

import numpy as np
import tensorflow as tf

from keras_dropact.pipelines import augment as augment_lib
from keras_dropact.pipelines import registry

_SHUFFLE_STREAM, _AUGMENT_STREAM = 0, 1


def _derived_seed(seed, pipeline_id, stream):
    """A well-mixed 31-bit seed for one (seed, input pipeline, purpose)."""
    if seed is None:
        return None
    state = np.random.SeedSequence([seed, pipeline_id, stream]).generate_state(1)
    return int(state[0] >> 1)


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
    ):
        self.spec = registry.get(name)
        registry.check_split(split)
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

    def build(self, batch_size, num_pipelines=1, pipeline_id=0):
        """The batched dataset of (float32 images, int32 labels).

        `num_pipelines`/`pipeline_id` shard the examples (one shard per
        input pipeline of a distribution strategy) and separate the seeds.
        """
        check_positive_int("batch_size", batch_size)
        spec = self.spec
        dataset = spec.loader(
            spec, self.split, data_dir=self.data_dir, download=self.download
        )
        if num_pipelines > 1:
            dataset = dataset.shard(num_pipelines, pipeline_id)
        dataset = dataset.cache()
        if self.shuffle:
            dataset = dataset.shuffle(
                buffer_size=spec.splits[self.split],
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
