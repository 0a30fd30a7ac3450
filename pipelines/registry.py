"""The datasets `pipelines.load` knows, described as data.

Each `DatasetSpec` row says what a dataset looks like (shape, classes, split
sizes), how its raw values become model inputs (`Normalisation`), which Cutout
size the literature uses on it, and which source reads it. Adding a dataset
adds a row here and, if it needs one, a loader in `tfds_source` or `offline`.

`folder:PATH` is the one dynamic name: its spec is built by scanning PATH.
"""

import dataclasses
from typing import Callable, Mapping, Optional, Tuple

from keras_dropact.pipelines import augment
from keras_dropact.pipelines import fashion_mnist
from keras_dropact.pipelines import image_ops
from keras_dropact.pipelines import offline
from keras_dropact.pipelines import tfds_source
from keras_dropact.pipelines.limits import check_image_size

FOLDER_PREFIX = "folder:"
# The channels images can be read with (`--channels`): gray or RGB.
CHANNELS = (1, 3)
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """Maps raw values x to model inputs: ((x / max_value) - mean) / std.

    `max_value` None leaves the values as they are (data that is already
    standardised); `mean`/`std` None stop after the rescaling.
    """

    max_value: Optional[float] = 255.0
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None

    def describe(self):
        if self.max_value is None:
            return "as generated (already standardised)"
        text = f"x / {self.max_value:g} in [0, 1]"
        if self.mean is not None:
            text = f"(x / {self.max_value:g} - mean {self.mean}) / std {self.std}"
        return text


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset: everything `load` and `info` need, no code paths.

    Attributes:
        name: the name users pass to `pipelines.load`.
        shape: one example's shape, channels last.
        num_classes: labels are integers in [0, num_classes).
        splits: examples per split ("train", "test").
        normalisation: how raw values become model inputs.
        cutout_size: default Cutout side in pixels (None: no literature value,
            pass `cutout_size=` explicitly).
        recipe_augment: the augmentation the Drop-Activation paper trains with.
        crop_padding: the zero padding, in pixels, of the random crop of
            `standard` (4 on 32x32 images, He et al. 2016; 2 on 28x28).
        loader: `loader(spec, split, data_dir, download)` returning an
            unbatched `tf.data.Dataset` of (raw image, int label).
        is_image: False for 1-D signals, which image augmentations reject.
        tfds_name: the TFDS builder name ("" for offline datasets).
        tfds_splits: our split name to the TFDS split expression.
        transpose: True where TFDS stores images transposed (EMNIST).
        archives: (file name, URL) pairs TFDS downloads; the offline
            preparation instructions name them.
        description: one line for `info`.
        class_names: the label names: label i is `class_names[i]` (what
            an export's serving signatures return).
        note: one line a user should read before training on the data
            (a folder's images resized to its most common size), or "".
        split_digests: a folder's {split: digest of its file list}, to
            notice files replaced between a run and its resumption; None
            for datasets whose files do not change.
    """

    name: str
    shape: Tuple[int, ...]
    num_classes: int
    splits: Mapping[str, int]
    normalisation: Normalisation
    loader: Callable
    cutout_size: Optional[int] = None
    recipe_augment: Optional[str] = None
    crop_padding: int = augment.PADDING
    is_image: bool = True
    tfds_name: str = ""
    tfds_splits: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: {"train": "train", "test": "test"}
    )
    transpose: bool = False
    archives: Tuple[Tuple[str, str], ...] = ()
    description: str = ""
    class_names: Tuple[str, ...] = ()
    note: str = ""
    split_digests: Optional[Mapping[str, str]] = None

    def __post_init__(self):
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"Dataset {self.name!r} has {self.num_classes} classes but "
                f"{len(self.class_names)} class names."
            )


DIGIT_NAMES = tuple(str(digit) for digit in range(10))
# EMNIST Balanced merges the 15 lowercase letters that look like their
# uppercase form (c i j k l m o p s u v w x y z): 10 digits, 26 uppercase and
# 11 lowercase letters, in the label order of the EMNIST mapping file.
EMNIST_BALANCED_NAMES = (
    DIGIT_NAMES
    + tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    + tuple("abdefghnqrt")
)
# The label order of the original archives (batches.meta.txt,
# fine_label_names.txt), which TFDS keeps. TFDS itself knows the names only
# after preparing the data, so they are listed here.
CIFAR10_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
CIFAR100_NAMES = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl
    boy bridge bus butterfly camel can castle caterpillar cattle chair
    chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin
    elephant flatfish forest fox girl hamster house kangaroo keyboard lamp
    lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain
    mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck
    pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket
    rose sea seal shark shrew skunk skyscraper snail snake spider squirrel
    streetcar sunflower sweet_pepper table tank telephone television tiger
    tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
    worm""".split()
)

CIFAR_NORMALISATION = Normalisation(
    max_value=255.0,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010),
)
UNIT_RANGE = Normalisation(max_value=255.0)
FOLDER_NORMALISATION = UNIT_RANGE

_SPECS = (
    DatasetSpec(
        name="cifar10",
        shape=(32, 32, 3),
        num_classes=10,
        splits={"train": 50_000, "test": 10_000},
        normalisation=CIFAR_NORMALISATION,
        loader=tfds_source.load_split,
        cutout_size=16,
        recipe_augment="standard",
        tfds_name="cifar10",
        archives=(
            (
                "cifar-10-binary.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            ),
        ),
        description="CIFAR-10 (TFDS cifar10)",
        class_names=CIFAR10_NAMES,
    ),
    DatasetSpec(
        name="cifar100",
        shape=(32, 32, 3),
        num_classes=100,
        splits={"train": 50_000, "test": 10_000},
        normalisation=CIFAR_NORMALISATION,
        loader=tfds_source.load_split,
        cutout_size=8,
        recipe_augment="standard",
        tfds_name="cifar100",
        archives=(
            (
                "cifar-100-binary.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
            ),
        ),
        description="CIFAR-100 fine labels (TFDS cifar100)",
        class_names=CIFAR100_NAMES,
    ),
    DatasetSpec(
        name="svhn",
        shape=(32, 32, 3),
        num_classes=10,
        splits={"train": 73_257 + 531_131, "test": 26_032},
        normalisation=UNIT_RANGE,
        loader=tfds_source.load_split,
        cutout_size=20,
        recipe_augment=None,
        tfds_name="svhn_cropped",
        tfds_splits={"train": "train+extra", "test": "test"},
        archives=tuple(
            (f, "http://ufldl.stanford.edu/housenumbers/" + f)
            for f in ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat")
        ),
        description="SVHN cropped digits, train = train + extra (TFDS svhn_cropped)",
        class_names=DIGIT_NAMES,
    ),
    DatasetSpec(
        name="emnist-balanced",
        shape=(28, 28, 1),
        num_classes=47,
        splits={"train": 112_800, "test": 18_800},
        normalisation=UNIT_RANGE,
        loader=tfds_source.load_split,
        recipe_augment=None,
        tfds_name="emnist/balanced",
        transpose=True,
        archives=(
            ("gzip.zip", "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"),
        ),
        description="EMNIST Balanced, upright (TFDS emnist/balanced, transposed back)",
        class_names=EMNIST_BALANCED_NAMES,
    ),
    DatasetSpec(
        name=fashion_mnist.NAME,
        shape=fashion_mnist.SHAPE,
        num_classes=len(fashion_mnist.CLASS_NAMES),
        splits=fashion_mnist.SPLIT_SIZES,
        # The training split's pixel mean and standard deviation (x / 255):
        # docs/guides/datasets.md has the command that computes them.
        normalisation=Normalisation(max_value=255.0, mean=(0.2860,), std=(0.3530,)),
        loader=fashion_mnist.load,
        # A 14x14 square covers a quarter of a 28x28 image, as Cutout 16
        # does on CIFAR-10's 32x32 (also 10 classes; DeVries & Taylor 2017).
        cutout_size=14,
        recipe_augment=None,
        crop_padding=2,
        description=(
            "Fashion-MNIST, Zalando's 28x28 gray garments (offline: Keras' cache, "
            "the Debian package dataset-fashion-mnist, or TFDS fashion_mnist)"
        ),
        class_names=fashion_mnist.CLASS_NAMES,
    ),
    DatasetSpec(
        name="digits",
        shape=(8, 8, 1),
        num_classes=10,
        splits={"train": offline.DIGITS_TRAIN, "test": offline.DIGITS_TEST},
        normalisation=Normalisation(max_value=16.0),
        loader=offline.load_digits,
        description="scikit-learn 8x8 digits, fixed split (offline)",
        class_names=DIGIT_NAMES,
    ),
    DatasetSpec(
        name="mnist1d",
        shape=(40, 1),
        num_classes=10,
        splits={"train": 4_000, "test": 1_000},
        normalisation=Normalisation(max_value=None),
        loader=offline.load_mnist1d,
        is_image=False,
        description="MNIST-1D signals from the mnist1d generator (offline)",
        class_names=DIGIT_NAMES,
    ),
)
SPECS = {spec.name: spec for spec in _SPECS}


def names():
    """The registered dataset names, plus the `folder:PATH` pattern."""
    return tuple(SPECS) + (FOLDER_PREFIX + "PATH",)


def is_folder(name):
    return isinstance(name, str) and name.startswith(FOLDER_PREFIX)


def get(name, image_size=None, channels=None):
    """The `DatasetSpec` for `name`; `folder:PATH` scans PATH.

    `image_size` ([height, width] or N) is the size the images are read at;
    None: a folder's most common size (`offline.scan_folder`), another
    dataset's own. `channels` (1 or 3) converts them: None keeps a folder's
    (1 if every image is gray, else 3) or the dataset's own. A dataset read
    at another shape than its own gets a spec of that shape whose loader
    converts and resizes every image (`image_ops.read_as`), as
    `serve_image_bytes` converts files.

    Raises:
        ValueError: for an unknown name, listing the valid ones; an
            `image_size` or `channels` for 1-D signals, or `channels` 1
            for data normalised per RGB channel.
    """
    image_size = check_image_size(image_size)
    check_channels(channels)
    if is_folder(name):
        path = name[len(FOLDER_PREFIX):]
        found = offline.scan_folder(path, image_size)
        return DatasetSpec(
            name=name,
            shape=(*found.shape[:2], channels or found.shape[2]),
            num_classes=len(found.class_names),
            splits=found.split_sizes,
            normalisation=FOLDER_NORMALISATION,
            loader=offline.load_folder,
            description=(
                f"images from {path}, classes {', '.join(found.class_names)}"
            ),
            class_names=found.class_names,
            note=found.note(path),
            split_digests=found.digests(path),
        )
    if name not in SPECS:
        raise ValueError(
            f"Unknown dataset {name!r}. Valid names: {', '.join(names())}."
        )
    return _read_as(SPECS[name], image_size, channels)


def check_channels(channels):
    """ValueError unless `channels` is None, 1 or 3."""
    if channels is not None and (isinstance(channels, bool) or channels not in CHANNELS):
        raise ValueError(
            f"--channels must be 1 (gray) or 3 (RGB), got {channels!r}."
        )


def _read_as(spec, image_size, channels):
    """`spec`, or the spec of its images read at `image_size` with `channels`."""
    if image_size is None and channels is None:
        return spec
    if not spec.is_image:
        shape = "x".join(map(str, spec.shape))
        raise ValueError(
            f"--image-size and --channels are for images; {spec.name!r} holds 1-D signals "
            f"of shape {shape}. Leave them out."
        )
    shape = (*(image_size or spec.shape[:2]), channels or spec.shape[2])
    if shape == spec.shape:
        return spec
    mean = spec.normalisation.mean
    if shape[2] == 1 and mean is not None and len(mean) > 1:
        raise ValueError(
            f"--channels 1: {spec.name!r} is normalised per RGB channel (mean {mean}), "
            "which gray images have no statistics for. Leave out --channels."
        )

    def loader(resized, split, data_dir=None, download=True):
        del resized
        data = spec.loader(spec, split, data_dir=data_dir, download=download)
        return data.map(lambda image, label: (image_ops.read_as(image, shape), label))

    return dataclasses.replace(spec, shape=shape, loader=loader)


def values(name):
    """(Normalisation, is_image) of dataset `name`, without reading any data
    (a folder is not scanned): what serving needs besides the shape and
    class names a run records."""
    if is_folder(name):
        return FOLDER_NORMALISATION, True
    spec = get(name)
    return spec.normalisation, spec.is_image


def check_split(split):
    if split not in SPLITS:
        raise ValueError(
            f"Unknown split {split!r}. Valid splits: {', '.join(SPLITS)}."
        )
