"""Datasets that need no network: scikit-learn's digits, MNIST-1D, image folders.

`digits` and `mnist1d` ship inside installed packages (scikit-learn's bundled
8x8 digits; the mnist1d package's generator, never its downloader), so the
quick runs and CPU experiments work on a machine without network or TFDS data.
`folder:PATH` reads a user's own images.
"""

import collections
import dataclasses
import functools
import hashlib
import os
import random
import re
from typing import Mapping, Tuple

import numpy as np
import tensorflow as tf

from keras_dropact.extras import require
from keras_dropact.pipelines import image_ops
from keras_dropact.pipelines.limits import check_image_file
from keras_dropact.pipelines.limits import check_image_size

# scikit-learn's digits: 1797 images; a fixed permutation (numpy's
# RandomState(0), whose stream numpy guarantees across versions) puts the
# first 1437 in train and the last 360 in test (80 % / 20 %).
DIGITS_TRAIN = 1437
DIGITS_TEST = 360
DIGITS_SPLIT_SEED = 0

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Folders without train/ and test/ sub-folders are split like digits:
# a RandomState(0) permutation, the last 20 % (rounded down) is test.
FOLDER_TEST_FRACTION = 0.2
FOLDER_SPLIT_SEED = 0


def from_arrays(images, labels):
    """An unbatched dataset of (image, int32 label) from two NumPy arrays."""
    return tf.data.Dataset.from_tensor_slices(
        (images, labels.astype(np.int32))
    )


@functools.lru_cache(maxsize=1)
def _digits_arrays():
    require("train", "sklearn", feature="the digits dataset")
    from sklearn.datasets import load_digits

    digits = load_digits()
    # Values are integers 0..16; uint8 keeps the cache small and exact.
    images = digits.images.astype(np.uint8)[..., None]
    order = np.random.RandomState(DIGITS_SPLIT_SEED).permutation(len(images))
    train, test = order[:DIGITS_TRAIN], order[DIGITS_TRAIN:]
    assert len(test) == DIGITS_TEST
    return {
        "train": (images[train], digits.target[train]),
        "test": (images[test], digits.target[test]),
    }


def load_digits(spec, split, data_dir=None, download=True):
    """scikit-learn's 8x8 digits as (uint8 image 8x8x1 in 0..16, int32 label)."""
    del spec, data_dir, download  # Bundled with scikit-learn.
    return from_arrays(*_digits_arrays()[split])


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays():
    require("train", "mnist1d", feature="the mnist1d dataset")
    import mnist1d.data

    # make_dataset reseeds Python's and NumPy's global generators (seed 42);
    # restore them so loading data does not change the caller's randomness.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        data = mnist1d.data.make_dataset(mnist1d.data.get_dataset_args())
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)

    def signals(x):
        return x.astype(np.float32)[..., None]

    return {
        "train": (signals(data["x"]), data["y"]),
        "test": (signals(data["x_test"]), data["y_test"]),
    }


def load_mnist1d(spec, split, data_dir=None, download=True):
    """MNIST-1D as (float32 signal (40, 1), int32 label).

    The package's default generator arguments (`get_dataset_args()`, seed 42)
    give 4000 train and 1000 test signals, already standardised.
    """
    del spec, data_dir, download  # Generated locally.
    return from_arrays(*_mnist1d_arrays()[split])


@dataclasses.dataclass(frozen=True)
class FolderContents:
    """What `scan_folder` found: classes, files per split, image shape.

    `other_sizes` counts the images whose height and width are not
    `shape`'s (they are resized to it when read); `size_given` says whether
    the size was asked for (`image_size`) or chosen as the most common one.
    """

    class_names: Tuple[str, ...]
    files: Mapping[str, Tuple[Tuple[str, int], ...]]
    shape: Tuple[int, int, int]
    other_sizes: int = 0
    size_given: bool = False

    @property
    def split_sizes(self):
        return {split: len(files) for split, files in self.files.items()}

    def digests(self, root):
        """{split: SHA-256 of its (label, file path under `root`) list}: a
        fingerprint of which files a split holds, not of their contents."""
        digests = {}
        for split, pairs in self.files.items():
            listing = hashlib.sha256()
            for file, label in pairs:
                listing.update(b"%d\t%s\n" % (label, os.fsencode(os.path.relpath(file, root))))
            digests[split] = listing.hexdigest()
        return digests

    def note(self, path):
        """One line on images resized to a size chosen from the folder, or ""."""
        if self.size_given or not self.other_sizes:
            return ""
        total = sum(self.split_sizes.values())
        return (
            f"folder:{path}: images are read at {self.shape[0]}x{self.shape[1]}, the most "
            f"common size; {self.other_sizes} of {total} images have another size and are "
            "resized to it (choose the size with --image-size)."
        )


def _text(name, path, what):
    """`name` (from os.listdir) unless it is not UTF-8: class names are text."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            f"folder:{path}: the {what} {name!r} is not UTF-8 (undecodable bytes "
            "shown as \\udcXX); class names are served as text: rename it."
        ) from None
    return name


def _list_classes(root, path):
    return sorted(
        _text(entry.name, path, "class folder name")
        for entry in os.scandir(root) if entry.is_dir()
    )


def _list_images(root, class_names):
    """(path, label) pairs, in a fixed order (class, then file name).

    File names need not be UTF-8: paths are kept as os.listdir gives them
    (undecodable bytes as surrogates) and given to TensorFlow as bytes.
    """
    pairs = []
    for label, class_name in enumerate(class_names):
        folder = os.path.join(root, class_name)
        if not os.path.isdir(folder):
            continue
        for file_name in sorted(os.listdir(folder)):
            if file_name.lower().endswith(IMAGE_EXTENSIONS):
                pairs.append((os.path.join(folder, file_name), label))
    return tuple(pairs)


def _decode(path, channels=0):
    """Decodes the image at `path` (a string tensor, or bytes)."""
    return tf.io.decode_image(
        tf.io.read_file(path), channels=channels, expand_animations=False
    )


def _check_layout(path, class_names, files):
    """ValueError unless there are >= 2 classes, each with images everywhere.

    `files` maps a location (`"train/"`, `"test/"`, or PATH itself) to its
    (path, label) pairs.
    """
    prefix = f"folder:{path}:"
    if len(class_names) < 2:
        found = f"only the class folder {class_names[0]!r}" if class_names else "no class folders"
        raise ValueError(
            f"{prefix} found {found} in {' and '.join(map(repr, files))}; a classifier "
            f"needs at least 2 class sub-folders holding images ({', '.join(IMAGE_EXTENSIONS)})."
        )
    for where, pairs in files.items():
        counts = np.bincount([label for _, label in pairs], minlength=len(class_names))
        empty = [name for name, count in zip(class_names, counts) if count == 0]
        if empty:
            raise ValueError(
                f"{prefix} class folder(s) {', '.join(empty)} in {where!r} hold no "
                f"images ({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder(s)."
            )


def _split_layout(path, split_roots):
    """Classes and files of PATH/train/<class>/... and PATH/test/<class>/..."""
    class_names = tuple(_list_classes(split_roots["train"], path))
    test_classes = tuple(_list_classes(split_roots["test"], path))
    if class_names != test_classes:
        only_train = sorted(set(class_names) - set(test_classes)) or ["none"]
        only_test = sorted(set(test_classes) - set(class_names)) or ["none"]
        raise ValueError(
            f"folder:{path}: train/ and test/ must hold the same class folders; "
            f"only in train/: {', '.join(only_train)}; only in test/: "
            f"{', '.join(only_test)}."
        )
    files = {split: _list_images(root, class_names) for split, root in split_roots.items()}
    _check_layout(path, class_names, {f"{s}/": files[s] for s in files})
    return class_names, files


def _class_layout(path):
    """Classes and files of PATH/<class>/..., split 80/20 by a fixed permutation."""
    class_names = tuple(_list_classes(path, path))
    everything = _list_images(path, class_names)
    _check_layout(path, class_names, {path: everything})
    order = np.random.RandomState(FOLDER_SPLIT_SEED).permutation(len(everything))
    cut = len(everything) - int(len(everything) * FOLDER_TEST_FRACTION)
    files = {
        "train": tuple(everything[i] for i in order[:cut]),
        "test": tuple(everything[i] for i in order[cut:]),
    }
    if not files["test"]:
        raise ValueError(
            f"folder:{path}: {len(everything)} image(s) leave the test split "
            f"empty ({FOLDER_TEST_FRACTION:.0%} of the images, rounded down); "
            "add images, or give train/ and test/ sub-folders."
        )
    return class_names, files


def scan_folder(path, image_size=None):
    """Finds classes, split files and image shape under PATH.

    Two layouts are accepted:
      PATH/train/<class>/<image> and PATH/test/<class>/<image>, with the same
      class folders in both; or
      PATH/<class>/<image>, split 80/20 by a fixed permutation.
    Class names are the sub-folder names in sorted order (label = position).
    Every image is decoded (in parallel; cached while the files are
    unchanged). The shape is `image_size` (`check_image_size`), else the
    most common height x width of all images (a tie goes to the larger),
    with 1 channel if every image is grayscale, else 3; images of another
    size are resized to it when read.

    Raises:
        ValueError: PATH is missing; or it has fewer than 2 classes, a class
            or split without images, different classes in train/ and
            test/, a class folder name that is not UTF-8, an image file
            that is no regular file or is larger than `MAX_IMAGE_BYTES`
            (`limits`), or an image that does not decode. The message
            names the folder or file and what
            to fix.
    """
    image_size = check_image_size(image_size)
    if not os.path.isdir(path):
        raise ValueError(f"folder:{path}: {path!r} is not a directory.")
    split_roots = {s: os.path.join(path, s) for s in ("train", "test")}
    has_split = {s: os.path.isdir(root) for s, root in split_roots.items()}
    if any(has_split.values()) and not all(has_split.values()):
        present, missing = sorted(has_split, key=lambda s: not has_split[s])
        raise ValueError(
            f"folder:{path}: has a {present}/ sub-folder but no {missing}/; give "
            "both train/ and test/ (with the same class folders), or put the "
            f"class folders directly in {path!r}."
        )
    if all(has_split.values()):
        class_names, files = _split_layout(path, split_roots)
    else:
        class_names, files = _class_layout(path)
    paths = [p for split in ("train", "test") for p, _ in files[split]]
    shapes = _image_shapes(path, paths)
    channels = 1 if np.all(shapes[:, 2] <= 2) else 3  # Gray (+ alpha) only.
    sizes = collections.Counter(map(tuple, shapes[:, :2].tolist()))
    size = tuple(image_size) if image_size else max(sizes, key=lambda s: (sizes[s], s[0] * s[1], s))
    return FolderContents(
        class_names=class_names, files=files, shape=(*size, channels),
        other_sizes=len(paths) - sizes[size], size_given=image_size is not None,
    )


def _image_shapes(root, paths):
    """int array [len(paths), 3]: (height, width, channels) of every image.

    Every file is checked first (`limits.check_image_file`: a regular file
    of at most `MAX_IMAGE_BYTES`), without opening it.

    Raises:
        ValueError: naming the first file that cannot be read or decoded.
    """
    stamps = []
    for path in paths:
        try:
            info = check_image_file(path)  # No FIFO, device or huge file is read.
        except ValueError as error:
            raise ValueError(f"folder:{root}: cannot read image {path!r}: {error}. Replace or "
                             "delete the file.") from None
        stamps.append(_stamp(info))
    return _decoded_shapes(root, tuple(paths), tuple(stamps))


def file_stamp(path):
    """(inode, size, mtime) of `path`: a cache key that changes when the file does."""
    return _stamp(os.stat(path))


def _stamp(info):
    """`file_stamp` of a file whose `os.stat` is `info`."""
    return info.st_ino, info.st_size, info.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _decoded_shapes(root, paths, stamps):
    """`_image_shapes`, cached on the files' (inode, size, mtime) `stamps`.

    The images are decoded in parallel by tf.data; those that fail are
    dropped (`ignore_errors`) and found by their missing paths, then the
    first one is decoded again to report TensorFlow's reason.
    """
    del stamps  # Only part of the cache key.
    encoded = [os.fsencode(p) for p in paths]
    decoded = (
        tf.data.Dataset.from_tensor_slices(tf.constant(encoded, tf.string))
        .map(lambda p: (p, tf.shape(_decode(p))), num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()
    )
    shapes = {p: s for p, s in decoded.as_numpy_iterator()}
    bad = [p for p, e in zip(paths, encoded) if e not in shapes]
    if bad:
        _decode_named(root, bad[0], f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else "")
    return np.array([shapes[e] for e in encoded]).reshape(-1, 3)


def _decode_named(root, file, others=""):
    """`_decode(file)`, or a one-line ValueError naming the file and the reason.

    The file is named with repr(): bytes of a name that are not UTF-8 show
    as \\udcXX escapes, and the line stays printable.
    """
    try:
        return _decode(os.fsencode(file))
    except (tf.errors.OpError, ValueError) as error:
        # TensorFlow wraps the reason: "{{function_node ...}} REASON [Op:DecodeImage] ...".
        text = str(getattr(error, "message", error)).strip().splitlines()
        reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*$", "", text[0] if text else "")
        raise ValueError(
            f"folder:{root}: cannot decode image {file!r}{others}: "
            f"{reason.rstrip('.') or 'unreadable'}. Replace or delete the file(s)."
        ) from None


def load_folder(spec, split, data_dir=None, download=True):
    """A folder's images as (uint8 image of spec.shape, int32 label)."""
    del data_dir, download
    contents = scan_folder(spec.name.split(":", 1)[1], spec.shape[:2])
    paths = [os.fsencode(p) for p, _ in contents.files[split]]
    labels = np.array([label for _, label in contents.files[split]])
    height, width, channels = spec.shape

    def read(path, label):
        image = image_ops.resize(_decode(path, channels), height, width)
        return tf.ensure_shape(image, spec.shape), label

    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), labels.astype(np.int32))
    )
    return dataset.map(read, num_parallel_calls=tf.data.AUTOTUNE)
