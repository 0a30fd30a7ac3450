"""A checked reader of gzipped idx files, the format of MNIST and Fashion-MNIST.

An idx file (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a header
followed by the values, row-major:

    magic    4 bytes: 0, 0, the value type (0x08: unsigned byte), the rank
    dims     rank big-endian uint32 sizes, the first one the item count
    values   prod(dims) values of the type

The distributed files are gzip-compressed. `read` checks, in this order, so
that nothing is allocated for a header that lies: the gzip stream, the magic
number, the sizes against the expected count and item shape (a header
claiming 4 billion images fails here), then that the values are exactly as
many as the header says (neither truncated nor followed by more data), and
that the gzip stream is intact to its end (its CRC). Every failure is an
`IdxError` of one line naming the file and what is wrong.
"""

import gzip
import struct
import zlib

import numpy as np

UNSIGNED_BYTE = 0x08


class IdxError(ValueError):
    """An idx file that is not what it must be; the message names it."""


def _of_shape(dims):
    """" of 28x28" for items of that shape; "" for scalars (labels)."""
    return f" of {'x'.join(str(d) for d in dims)}" if dims else ""


def _read_exactly(stream, size, path, what):
    """`size` bytes of `stream`, or an IdxError saying how many were there."""
    data = stream.read(size)
    if len(data) != size:
        raise IdxError(f"{path!r} is truncated: {len(data)} of the {size} bytes of {what}.")
    return data


def _open(path):
    """The decompressing stream of `path`; an IdxError if it is no gzip file."""
    try:
        with open(path, "rb") as raw:
            start = raw.read(2)
    except OSError as error:
        raise IdxError(f"{path!r} cannot be read: {error.strerror or error}.") from None
    if start != b"\x1f\x8b":
        raise IdxError(
            f"{path!r} is not a gzip file (it starts with {start!r}); the idx files are "
            "read as distributed, gzip-compressed."
        )
    return gzip.open(path, "rb")


def read(path, item_shape, count, what="items"):
    """The values of the gzipped idx file `path`: uint8 [count, *item_shape].

    Args:
        path: the `.gz` file.
        item_shape: the shape of one item (e.g. (28, 28) for images, () for
            labels); the file's rank must be 1 + len(item_shape).
        count: the number of items the file must hold.
        what: the items' name in messages ("images", "labels").

    Raises:
        IdxError: one line naming `path` and what is wrong (not gzip, a
            truncated or damaged gzip stream, the magic number, the sizes,
            a truncated payload or data after it).
    """
    rank = 1 + len(item_shape)
    try:
        with _open(path) as stream:
            magic = _read_exactly(stream, 4, path, "the magic number")
            expected = bytes((0, 0, UNSIGNED_BYTE, rank))
            if magic != expected:
                raise IdxError(
                    f"{path!r} starts with magic number 0x{magic.hex()}, not 0x{expected.hex()} "
                    f"(idx, unsigned bytes, rank {rank}): it is not a file of {what}."
                )
            dims = struct.unpack(f">{rank}I", _read_exactly(stream, 4 * rank, path, "the sizes"))
            if dims[0] != count or tuple(dims[1:]) != tuple(item_shape):
                raise IdxError(
                    f"{path!r} holds {dims[0]} {what}{_of_shape(dims[1:])}; expected "
                    f"{count}{_of_shape(item_shape)}."
                )
            size = count * int(np.prod(item_shape, dtype=np.int64))
            data = _read_exactly(stream, size, path, what)
            if stream.read(1):
                raise IdxError(f"{path!r} holds more data than the {count} {what} of its header.")
    except EOFError:
        raise IdxError(f"{path!r} is truncated: its gzip stream ends before its end marker.") from None
    except (gzip.BadGzipFile, zlib.error) as error:
        raise IdxError(f"{path!r} is damaged: {error}.") from None
    except OSError as error:
        raise IdxError(f"{path!r} cannot be read: {error.strerror or error}.") from None
    return np.frombuffer(data, np.uint8).reshape(count, *item_shape)


def read_labels(path, count, num_classes):
    """The labels of the gzipped idx file `path`: uint8 [count], checked to
    lie in 0..num_classes - 1 (an IdxError naming the first that does not)."""
    labels = read(path, (), count, what="labels")
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        raise IdxError(
            f"{path!r} holds label {labels[bad[0]]} at index {bad[0]}; labels are "
            f"0..{num_classes - 1}."
        )
    return labels
