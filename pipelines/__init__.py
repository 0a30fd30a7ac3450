"""tf.data input pipelines for the Drop-Activation experiments.

    from keras_dropact import pipelines
    train = pipelines.load("cifar10", "train", 128, augment="standard", seed=0)
    test = pipelines.load("cifar10", "test", 128)
    model.fit(train, validation_data=test, epochs=164)

Datasets (`names()`): cifar10, cifar100, svhn (train = train + extra),
emnist-balanced through TFDS; fashion-mnist from files on the machine
(`pipelines.fashion_mnist`); digits and mnist1d offline; `folder:PATH` for
your own images. Augmentations (`augmentations()`): none, standard, cutout,
autoaugment (see `pipelines.augment`). `info(name)` describes a dataset;
`dataset_fn` serves `strategy.distribute_datasets_from_function`;
`stream_fn` does too, with the endless, resumable stream training reads
(`batches_per_pass` batches per pass over the data);
`ensure_available` checks (or fetches) the data before a run creates anything;
`prepare` builds a TFDS dataset from archives copied by hand; `class_names(name)`
lists the label names (what exported models answer). A folder's images are
read at `image_size=` (`load`, `info`, ...), by default their most common size;
any image dataset can be read at another size and with `channels=` 1 or 3
(`pipelines.image_ops`: the rule exports serve image files with).
"""

from keras_dropact.extras import require as _require

_require("train", "tensorflow", "tensorflow_datasets", feature="keras_dropact.pipelines")

from keras_dropact.pipelines import augment as _augment  # noqa: E402
from keras_dropact.pipelines import offline as _offline  # noqa: E402
from keras_dropact.pipelines import registry as _registry  # noqa: E402
from keras_dropact.pipelines import tfds_source as _tfds_source  # noqa: E402
from keras_dropact.pipelines.limits import MAX_IMAGE_BYTES  # noqa: E402
from keras_dropact.pipelines.limits import MAX_IMAGE_PIXELS  # noqa: E402
from keras_dropact.pipelines.limits import check_image_size  # noqa: E402
from keras_dropact.pipelines.limits import read_image_file  # noqa: E402
from keras_dropact.pipelines.limits import size_problem as image_size_problem  # noqa: E402
from keras_dropact.pipelines.pipeline import Pipeline as _Pipeline  # noqa: E402
from keras_dropact.pipelines.pipeline import batches_per_pass  # noqa: E402
from keras_dropact.pipelines.pipeline import check_positive_int as _check_positive_int  # noqa: E402
from keras_dropact.pipelines.pipeline import stream_examples as _stream_examples  # noqa: E402
from keras_dropact.pipelines.registry import check_channels  # noqa: E402
from keras_dropact.pipelines.tfds_source import DatasetNotPreparedError  # noqa: E402

__all__ = [
    "DatasetNotPreparedError",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "augmentations",
    "batches_per_pass",
    "check_channels",
    "check_image_size",
    "class_names",
    "dataset_fn",
    "ensure_available",
    "image_size_problem",
    "info",
    "load",
    "names",
    "prepare",
    "read_image_file",
    "stream_examples",
    "stream_fn",
]


def names():
    """Valid dataset names; `folder:PATH` stands for any image folder."""
    return _registry.names()


def augmentations():
    """Valid `augment` names (None means "none")."""
    return _augment.names()


def load(
    name,
    split,
    batch_size,
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
    """A batched `tf.data.Dataset` of (float32 images, int32 labels) for fit.

    Args:
        name: a dataset name from `names()`, or "folder:PATH".
        split: "train" or "test".
        batch_size: examples per batch.
        augment: None (normalisation only) or a name from `augmentations()`:
            "standard" (pad 4, random crop, flip), "cutout" (standard +
            Cutout), "autoaugment" (CIFAR-10 policy + standard + Cutout 16).
            It applies to whichever split is asked for.
        data_dir: the TFDS data folder (default: TFDS' own, usually
            ~/tensorflow_datasets or $TFDS_DATA_DIR); for fashion-mnist, the
            folder of its four files or a TFDS data folder. digits, mnist1d
            and folders ignore it.
        shuffle: shuffle examples, reshuffled each epoch; default: only for
            "train".
        seed: None for fresh randomness, or an int: the same seed gives the
            same shuffles and augmentations, epoch by epoch, on every run.
        drop_remainder: drop the last, smaller batch.
        cutout_size: Cutout side in pixels, replacing the default (16
            CIFAR-10, 8 CIFAR-100, 20 SVHN; 16 for "autoaugment").
        download: let TFDS download a dataset that is not prepared.
        image_size: [height, width] (or N for N x N) to read the images
            at; default: a folder's most common size, another dataset's
            own (images of another size are resized: `image_ops.resize`).
        channels: 1 or 3 to read the images gray or RGB (`image_ops.to_channels`);
            default: a folder's (gray if every image is), another dataset's own.
        take: read only the first `take` examples of the split, in the
            order its source stores them (the same subset for every seed);
            default: all.

    Raises:
        ValueError: unknown dataset, split or augmentation (the message lists
            the valid ones), or a bad argument.
        DatasetNotPreparedError: a TFDS dataset is neither prepared in
            data_dir nor downloadable; the message says how to prepare it.
    """
    pipeline = _Pipeline(
        name,
        split,
        augment=augment,
        data_dir=data_dir,
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
        cutout_size=cutout_size,
        download=download,
        image_size=image_size,
        channels=channels,
        take=take,
    )
    return pipeline.build(batch_size)


def dataset_fn(name, split, global_batch_size, **kwargs):
    """`fn(input_context) -> dataset` for `distribute_datasets_from_function`.

    Each input pipeline reads its own shard of the examples
    (`input_pipeline_id` of `num_input_pipelines`), draws its own shuffles
    and augmentations, and batches `input_context.get_per_replica_batch_size(
    global_batch_size)` examples. Keyword arguments are those of `load`;
    they are checked now, not on the workers.
    """
    _check_positive_int("global_batch_size", global_batch_size)
    pipeline = _Pipeline(name, split, **kwargs)

    def make(input_context):
        return pipeline.build(
            input_context.get_per_replica_batch_size(global_batch_size),
            num_pipelines=input_context.num_input_pipelines,
            pipeline_id=input_context.input_pipeline_id,
        )

    return make


def stream_fn(name, split, global_batch_size, start_step=0, **kwargs):
    """Like `dataset_fn`, for the endless stream that training reads.

    Each input pipeline yields `Pipeline.stream`: pass after pass over its
    shard, batch i a function of (seed, pipeline, i) alone. A step of a
    strategy with R replicas per pipeline takes R consecutive batches, so
    the stream of global step `start_step` starts at batch `start_step * R`:
    a run resumed at that step reads what the uninterrupted run read.
    `seed` (an int) is required.
    """
    _check_positive_int("global_batch_size", global_batch_size)
    pipeline = _Pipeline(name, split, **kwargs)
    if pipeline.seed is None:
        raise ValueError("stream_fn needs an int seed, got None.")

    def make(input_context):
        replicas = input_context.num_replicas_in_sync // input_context.num_input_pipelines
        return pipeline.stream(
            input_context.get_per_replica_batch_size(global_batch_size),
            start=start_step * replicas,
            num_pipelines=input_context.num_input_pipelines,
            pipeline_id=input_context.input_pipeline_id,
        )

    return make


def stream_examples(num_examples, global_batch_size, start_step, stop_step,
                    num_pipelines=1, num_replicas=1, drop_remainder=False):
    """Examples read in global steps [start_step, stop_step) of `stream_fn`'s
    data over a split of `num_examples` examples (`info(name)["splits"]`).

    `num_replicas` is the total over all `num_pipelines` input pipelines;
    the last batch of each pass is smaller, so this is not steps x batch.
    It takes the split's size, not the dataset's name, so that training
    callbacks never look the dataset up again (a folder would be rescanned).
    """
    replicas = num_replicas // num_pipelines
    per_replica = global_batch_size // num_replicas
    total = 0
    for pipeline_id in range(num_pipelines):
        shard = len(range(pipeline_id, num_examples, num_pipelines))
        total += _stream_examples(
            shard, per_replica, start_step * replicas, stop_step * replicas, drop_remainder
        )
    return total


def info(name, image_size=None, channels=None):
    """What `load(name, ..., image_size=image_size, channels=channels)` yields, as a dict.

    Keys: name, shape (one example), num_classes, splits (examples per
    split), normalisation (text), mean, std, cutout_size (the "cutout"
    default), recipe_augment (the Drop-Activation paper's training
    augmentation), source, description, note (a line to tell the user, or
    "": a folder's images of other sizes resized to the most common one).
    """
    spec = _registry.get(name, image_size, channels)
    return {
        "name": spec.name,
        "shape": spec.shape,
        "num_classes": spec.num_classes,
        "splits": dict(spec.splits),
        "normalisation": spec.normalisation.describe(),
        "mean": spec.normalisation.mean,
        "std": spec.normalisation.std,
        "cutout_size": spec.cutout_size,
        "recipe_augment": spec.recipe_augment,
        "source": f"tfds:{spec.tfds_name}" if spec.tfds_name else "offline",
        "description": spec.description,
        "note": spec.note,
    }


def ensure_available(name, data_dir=None, download=True):
    """Makes sure `load(name, ...)` will find its data; call it before writing anything.

    - TFDS datasets: prepared in `data_dir` (TFDS' default folder if None),
      else downloaded now if `download` and the download host answers;
      otherwise a `DatasetNotPreparedError` within seconds, with nothing
      written (not even the data folder).
    - `folder:PATH`: the layout checks pass and every image decodes (the
      error names the first bad file), as for `info`.
    - fashion-mnist: its files are found (never downloaded) and both splits
      read with every check (kept in memory for `load`).
    - digits, mnist1d: their generator packages are installed.

    Raises:
        ValueError: an unknown name, a bad image folder, or a damaged or
            wrong fashion-mnist file (named).
        DatasetNotPreparedError: a TFDS dataset that is not prepared;
            fashion-mnist's files not found.
        MissingExtraError: the package that makes an offline dataset is missing.
    """
    spec = _registry.get(name)
    if spec.tfds_name:
        _tfds_source.ensure_prepared(spec, data_dir=data_dir, download=download)
    elif spec.loader is not _offline.load_folder:  # `get` decoded a folder's images.
        for split in _registry.SPLITS:
            spec.loader(spec, split, data_dir=data_dir, download=download)


def class_names(name):
    """The label names of dataset `name`: label i is `class_names(name)[i]`.

    CIFAR-10/100 as in their archives (airplane ... truck; apple ... worm),
    SVHN "0".."9" (TFDS maps the archive's label 10 to 0), EMNIST-balanced 0-9 A-Z a b d e f g h n q r t,
    fashion-mnist T-shirt/top ... Ankle boot, digits and mnist1d "0".."9",
    `folder:PATH` its sub-folder names in sorted order.
    """
    return _registry.get(name).class_names


def prepare(name, data_dir=None, manual_dir=None):
    """Prepares a TFDS dataset in data_dir, from `manual_dir` if given.

    Put the original archives (see the DatasetNotPreparedError message or
    docs/guides/datasets.md) under their original names in `manual_dir` to
    prepare without network. Returns the prepared dataset's folder.
    """
    spec = _registry.get(name)
    if not spec.tfds_name:
        raise ValueError(
            f"{name!r} is not a TFDS dataset and needs no preparation; "
            f"TFDS datasets: {', '.join(s.name for s in _registry.SPECS.values() if s.tfds_name)}."
        )
    return _tfds_source.prepare(spec, data_dir=data_dir, manual_dir=manual_dir)
