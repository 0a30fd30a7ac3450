"""Fashion-MNIST (Xiao, Rasul, Vollgraf 2017) from files already on the machine.

Zalando's 70,000 28x28 grayscale images of 10 garment classes come as four
gzipped idx files (`pipelines.idx`). They are looked for, never downloaded,
in this order:

1. `data_dir` (`--data-dir`), if given, and then nowhere else: a folder
   holding the four files, or a TFDS data folder where `fashion_mnist` is
   prepared;
2. Keras' cache, `$KERAS_HOME/datasets/fashion-mnist` (default
   `~/.keras/datasets/fashion-mnist`), where
   `keras.datasets.fashion_mnist.load_data()` keeps them;
3. `/usr/share/datasets/fashion-mnist`, where the Debian package
   `dataset-fashion-mnist` installs them;
4. TFDS `fashion_mnist`, if prepared in TFDS' default folder.

A folder is taken when it holds all four files. Where none is found,
`DatasetNotPreparedError` says, in one line, where it looked and the two ways
to get the files. The idx files are read with every check of `idx.read`,
once per process (cached while the files are unchanged), and reach tf.data
as one in-memory tensor per split (47 MB of uint8 for the training split).
The examples keep the files' order (TFDS stores its own, shuffled order).
"""

import functools
import os

from keras_dropact.pipelines import idx
from keras_dropact.pipelines import offline
from keras_dropact.pipelines import tfds_source

NAME = "fashion-mnist"
TFDS_NAME = "fashion_mnist"
SHAPE = (28, 28, 1)
SPLIT_SIZES = {"train": 60_000, "test": 10_000}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# The original file names (also Keras' and the Debian package's).
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FILE_NAMES = tuple(name for pair in FILES.values() for name in pair)
SYSTEM_FOLDER = "/usr/share/datasets/fashion-mnist"
HOW_TO_GET = (
    "install the Debian package (apt-get install dataset-fashion-mnist), or run "
    "keras.datasets.fashion_mnist.load_data() on a connected machine and copy its "
    "~/.keras/datasets/fashion-mnist folder to this machine"
)


def keras_cache_folder():
    """Where `keras.datasets.fashion_mnist.load_data()` keeps the files."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets", "fashion-mnist")


def _missing_files(folder):
    """The file names of the four that `folder` lacks."""
    return [name for name in FILE_NAMES if not os.path.isfile(os.path.join(folder, name))]


def find(data_dir=None):
    """("idx", folder) or ("tfds", builder): where the data is read from.

    Raises:
        DatasetNotPreparedError: not found, one line naming where it looked
            and how to get the files.
    """
    if data_dir is not None:
        if not _missing_files(data_dir):
            return "idx", data_dir
        builder = tfds_source.prepared_builder(TFDS_NAME, data_dir)
        if builder is not None:
            return "tfds", builder
        raise tfds_source.DatasetNotPreparedError(
            f"Dataset {NAME!r} is not in --data-dir {data_dir!r}: it holds neither the four "
            f"files ({', '.join(_missing_files(data_dir))} missing) nor TFDS {TFDS_NAME!r} "
            "prepared; with --data-dir no other place is looked at. Pass the folder that "
            f"holds the files, or leave out --data-dir. To get the files, {HOW_TO_GET}."
        )
    folders = (keras_cache_folder(), SYSTEM_FOLDER)
    for folder in folders:
        if not _missing_files(folder):
            return "idx", folder
    builder = tfds_source.prepared_builder(TFDS_NAME)
    if builder is not None:
        return "tfds", builder
    incomplete = [f"{f} (lacks {', '.join(_missing_files(f))})" for f in folders
                  if os.path.isdir(f) and len(_missing_files(f)) < len(FILE_NAMES)]
    raise tfds_source.DatasetNotPreparedError(
        f"Dataset {NAME!r} not found: looked in {folders[0]}, {folders[1]} and for TFDS "
        f"{TFDS_NAME!r} in {tfds_source.dataset_folder(TFDS_NAME)[0]}"
        f"{'; incomplete: ' + ', '.join(incomplete) if incomplete else ''}. To get the files, "
        f"{HOW_TO_GET} (or pass a folder holding them with --data-dir)."
    )


@functools.lru_cache(maxsize=2)
def _read_files(images_path, labels_path, count, stamps):
    """(uint8 images [count, 28, 28, 1], uint8 labels [count]), checked;
    cached on the files' (inode, size, mtime) `stamps`."""
    del stamps  # Only part of the cache key.
    images = idx.read(images_path, SHAPE[:2], count, what="images")
    labels = idx.read_labels(labels_path, count, len(CLASS_NAMES))
    return images[..., None], labels


def read_arrays(folder, split):
    """The checked arrays of `split` from the four files in `folder`.

    Raises:
        idx.IdxError: a file is damaged or not what it must be (named).
    """
    paths = [os.path.join(folder, name) for name in FILES[split]]
    return _read_files(*paths, SPLIT_SIZES[split], tuple(offline.file_stamp(p) for p in paths))


def load(spec, split, data_dir=None, download=True):
    """Fashion-MNIST as (uint8 image 28x28x1 in 0..255, int32 label): the
    `DatasetSpec.loader`. `download` is ignored: nothing is downloaded."""
    del spec, download
    kind, where = find(data_dir)
    if kind == "tfds":
        return tfds_source.read_prepared(where, split)
    images, labels = read_arrays(where, split)
    return offline.from_arrays(images, labels)
