"""Reading the TFDS datasets (CIFAR-10/100, SVHN, EMNIST), and preparing them offline.

TFDS downloads and prepares a dataset on first use. Where that cannot happen
(no network, or a TFDS without its download dependencies) the error says which
dataset, where it looked, and how to prepare it from the original archives
instead of surfacing a TFDS traceback.
"""

import glob
import os
import socket
import threading
import urllib.parse

import tensorflow as tf
import tensorflow_datasets as tfds

_NO_DOWNLOAD = "download=False (with --data-dir, data is never downloaded)"
# Seconds to wait for the download host before calling the machine offline.
REACHABLE_TIMEOUT = 5.0


class DatasetNotPreparedError(RuntimeError):
    """A TFDS dataset is not prepared in data_dir and could not be downloaded."""


def _builder(spec, data_dir):
    return tfds.builder(spec.tfds_name, data_dir=data_dir)


def not_prepared_message(spec, root, looked_for, reason):
    """The user-facing explanation: what is missing, where, how to fix it.

    The first line says it all (dataset, folder, why, where the fix is);
    the lines after it give the offline preparation step by step.
    """
    root = str(root)
    archives = "\n".join(
        f"       {filename}  from  {url}" for filename, url in spec.archives
    )
    return (
        f"Dataset {spec.name!r} (TFDS {spec.tfds_name!r}) is not prepared in "
        f"data_dir {root!r} and {reason}; prepare it offline as follows "
        '(docs/guides/datasets.md, "TFDS data without network"), then pass --data-dir.\n'
        f"  Looked for {looked_for}. To prepare it offline:\n"
        "  1. on a machine with network access, download\n"
        f"{archives}\n"
        "  2. put the file(s), with these exact names, in one folder MANUAL_DIR "
        "on this machine;\n"
        f"  3. run  tfds build {spec.tfds_name} --data_dir={root} "
        "--manual_dir=MANUAL_DIR\n"
        f"     or, in Python, pipelines.prepare({spec.name!r}, "
        f"data_dir={root!r}, manual_dir='MANUAL_DIR').\n"
        "Then load with the same data_dir (--data-dir on the command line). "
        f"Copying a prepared {root}/{spec.tfds_name.split('/')[0]} folder from "
        "another machine works too."
    )


def download_host(spec):
    """(host, port) of the dataset's first archive URL."""
    url = urllib.parse.urlsplit(spec.archives[0][1])
    return url.hostname, url.port or (443 if url.scheme == "https" else 80)


def is_reachable(host, port, timeout=REACHABLE_TIMEOUT):
    """True if `host:port` accepts a TCP connection within `timeout` seconds.

    The probe runs in a daemon thread so that a name lookup that hangs
    (no DNS server) cannot hold the caller longer than `timeout`.
    """
    answered = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answered.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered)


def dataset_folder(tfds_name, data_dir=None):
    """(data_dir root, the dataset's folder in it), as TFDS lays them out."""
    root = data_dir or tfds.core.constants.DATA_DIR
    return root, os.path.join(root, *tfds_name.split("/"))


def prepared_builder(tfds_name, data_dir=None):
    """The TFDS builder of `tfds_name` if the dataset is prepared in
    `data_dir` (TFDS' default folder if None), else None.

    Looks on disk first and writes nothing: constructing a TFDS builder for
    a dataset that is not prepared creates a temporary folder.
    """
    _, folder = dataset_folder(tfds_name, data_dir)
    if not glob.glob(os.path.join(glob.escape(folder), "*", "dataset_info.json")):
        return None
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    return builder if builder.is_prepared() else None


def ensure_prepared(spec, data_dir=None, download=True):
    """Makes sure the dataset is prepared in data_dir, downloading it if allowed.

    Reads nothing but the prepared dataset's metadata and writes nothing
    unless it downloads. A dataset that is not prepared fails within
    seconds when `download` is False or its download host does not answer
    (no network), where TFDS' own download would retry for minutes; it is
    looked for on disk first because constructing a TFDS builder for a
    dataset that is not prepared creates a temporary folder. `load_split`
    leaves the download to TFDS (so `tfds.testing.mock_data` serves it):
    callers that must not wait, such as `train`, call this first.

    Raises:
        DatasetNotPreparedError: with the offline preparation steps.
    """
    if prepared_builder(spec.tfds_name, data_dir) is not None:
        return
    root, folder = dataset_folder(spec.tfds_name, data_dir)
    if not download:
        raise DatasetNotPreparedError(not_prepared_message(spec, root, folder, _NO_DOWNLOAD))
    host, port = download_host(spec)
    if not is_reachable(host, port):
        raise DatasetNotPreparedError(
            not_prepared_message(
                spec, root, folder, f"cannot be downloaded ({host} does not answer: no network?)"
            )
        )
    prepare(spec, data_dir)


def prepare(spec, data_dir=None, manual_dir=None):
    """Downloads (or reads from `manual_dir`) and prepares one TFDS dataset.

    With `manual_dir`, TFDS takes each archive from that folder, under its
    original file name (see `DatasetSpec.archives`), instead of downloading it.
    Returns the folder the prepared dataset is in.
    """
    builder = _builder(spec, data_dir)
    config = None
    if manual_dir is not None:
        config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    try:
        builder.download_and_prepare(download_config=config)
    except Exception as error:  # TFDS raises many types; all mean "not prepared".
        reason = f"preparing it failed ({type(error).__name__}: {error})".splitlines()[0]
        raise DatasetNotPreparedError(
            not_prepared_message(spec, builder.data_dir_root, builder.data_dir, reason)
        ) from error
    return builder.data_dir


def load_split(spec, split, data_dir=None, download=True):
    """An unbatched dataset of (uint8 image, int32 label) for one split.

    SVHN's training split is TFDS `train+extra`; EMNIST images are transposed
    back to upright (TFDS stores them as the original EMNIST files do).

    Raises:
        DatasetNotPreparedError: the dataset is not prepared and could not be
            downloaded (or `download` is False).
    """
    builder = _builder(spec, data_dir)
    if not builder.is_prepared():
        if not download:
            raise DatasetNotPreparedError(
                not_prepared_message(spec, builder.data_dir_root, builder.data_dir, _NO_DOWNLOAD)
            )
        prepare(spec, data_dir)
    return read_prepared(builder, spec.tfds_splits[split], spec.transpose)


def read_prepared(builder, split, transpose=False):
    """(uint8 image, int32 label) pairs of the TFDS `split` expression of a
    prepared `builder`, in its stored order; images transposed if asked."""
    dataset = builder.as_dataset(
        split=split,
        as_supervised=True,
        shuffle_files=False,
        # The pipeline caches the decoded split itself.
        read_config=tfds.ReadConfig(try_autocache=False),
    )

    def to_pair(image, label):
        if transpose:
            image = tf.transpose(image, [1, 0, 2])
        return image, tf.cast(label, tf.int32)

    return dataset.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE)
