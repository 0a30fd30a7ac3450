"""The bounds on what a pipeline reads: image sizes and image files.

Both are checked before anything is allocated, so that a mistyped size or a
file that is no image ends with one line instead of filling the memory:

- `MAX_IMAGE_PIXELS`, the most pixels (height x width) images are read at
  for training: `--image-size`, or a folder's most common size: 512x512.
  The paper's networks are built for 32x32 (CIFAR-10/100, SVHN) and 28x28
  (EMNIST) inputs. They are convolutional up to a global average pooling,
  so they take larger images, but they keep the full resolution through
  their first stage (ImageNet networks shrink it 4-fold first), so the
  memory of a training step grows with the pixels. At 512x512 one
  activation of ResNet-20's first stage (16 channels of float32) is
  512 * 512 * 16 * 4 bytes = 16 MiB per image, and the backward pass
  keeps at least 21 of them (7 convolutions, each followed by BatchNorm
  and an activation): 336 MiB per image, 21 GiB for the "quick" recipe's
  batch of 64, 42 GiB for the paper's 128, about what one GPU holds; the
  wider networks need several times more. Photos are read smaller with
  `--image-size` (photo classifiers read a few hundred pixels a side,
  ImageNet's 224x224). The bound stops sizes no run of these networks
  can hold; a batch too large for a smaller machine can still fail below it.
- `MAX_IMAGE_BYTES`, the largest image file `predict` and folder scans
  read: 64 MiB, more than an uncompressed 24-bit BMP of 4096x4096 pixels
  (48 MiB) and far more than a JPEG or PNG photo of that size.

Image files must be regular files: a FIFO, a device (a link to
`/dev/zero`), a socket or a directory is refused by its `os.stat` before
it is opened, and `read_image_file` opens with O_NONBLOCK and checks
again, so that nothing waits on a FIFO or reads a device without end.
"""

import math
import numbers
import os
import stat

MAX_IMAGE_PIXELS = 512 * 512
MAX_IMAGE_BYTES = 64 * 2**20
_TOO_MANY_BYTES = (f"more than the {MAX_IMAGE_BYTES:,} ({MAX_IMAGE_BYTES >> 20} MiB) an image "
                   "file may have (docs/reference/validation.md)")

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def check_image_size(image_size):
    """`image_size` as [height, width], or None; ValueError for anything else.

    An int N means [N, N]. Sizes of more than `MAX_IMAGE_PIXELS` pixels are
    refused.
    """
    if image_size is None:
        return None
    values = [image_size] if isinstance(image_size, numbers.Integral) else image_size
    if (
        not isinstance(values, (list, tuple))
        or len(values) not in (1, 2)
        or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in values)
    ):
        raise ValueError(
            "--image-size must be a positive size in pixels, N or HEIGHTxWIDTH "
            f"(e.g. 32 or 48x64); got {image_size!r}."
        )
    height, width = int(values[0]), int(values[-1])
    problem = size_problem(height, width)
    if problem:
        raise ValueError(f"--image-size {height}x{width} {problem}; choose a smaller size, "
                         "e.g. --image-size 256.")
    return [height, width]


def size_problem(height, width):
    """Why images cannot be read at height x width, or ""."""
    if height * width <= MAX_IMAGE_PIXELS:
        return ""
    side = math.isqrt(MAX_IMAGE_PIXELS)
    return (f"is {height * width:,} pixels, more than the {MAX_IMAGE_PIXELS:,} ({side}x{side}) "
            "images are read at for training (docs/reference/validation.md)")


def _file_problem(info):
    """Why a file of `os.stat` result `info` is no image file to read, or ""."""
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode))
        return f"{kind}, not a regular file" if kind else "not a regular file"
    if info.st_size > MAX_IMAGE_BYTES:
        return f"{info.st_size:,} bytes, {_TOO_MANY_BYTES}"
    return ""


def check_image_file(path):
    """`os.stat(path)` (links followed) of a regular file of at most
    `MAX_IMAGE_BYTES`; never opens the file.

    Raises:
        ValueError: the reason, e.g. "a FIFO (named pipe), not a regular
            file" or "No such file or directory".
    """
    try:
        info = os.stat(path)
    except OSError as error:
        raise ValueError(error.strerror or str(error)) from None
    problem = _file_problem(info)
    if problem:
        raise ValueError(problem)
    return info


def read_image_file(path):
    """The bytes of the image file at `path` (`check_image_file`'s checks).

    The file is opened without waiting (O_NONBLOCK) and checked again by
    its descriptor, in case it was replaced since, and read up to
    `MAX_IMAGE_BYTES`.

    Raises:
        ValueError: the reason (as `check_image_file`).
    """
    check_image_file(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise ValueError(error.strerror or str(error)) from None
    try:
        problem = _file_problem(os.fstat(descriptor))
        if problem:
            raise ValueError(problem)
        chunks, size = [], 0
        while size <= MAX_IMAGE_BYTES:
            chunk = os.read(descriptor, min(1 << 20, MAX_IMAGE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise ValueError(error.strerror or str(error)) from None
    finally:
        os.close(descriptor)
    if size > MAX_IMAGE_BYTES:  # It grew while it was read.
        raise ValueError(f"grown, while it was read, to {_TOO_MANY_BYTES}")
    return b"".join(chunks)
