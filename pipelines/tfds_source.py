"""Reading the TFDS datasets (CIFAR-10/100, SVHN, EMNIST), and preparing them offline.

TFDS downloads and prepares a dataset on first use. Where that cannot happen
(no network, or a TFDS without its download dependencies) the error says which
dataset, where it looked, and how to prepare it from the original archives
instead of surfacing a TFDS traceback.
"""

import tensorflow as tf
import tensorflow_datasets as tfds


class DatasetNotPreparedError(RuntimeError):
    """A TFDS dataset is not prepared in data_dir and could not be downloaded."""


def _builder(spec, data_dir):
    return tfds.builder(spec.tfds_name, data_dir=data_dir)


def not_prepared_message(spec, builder, cause=None):
    """The user-facing explanation: what is missing, where, how to fix it."""
    root = str(builder.data_dir_root)
    reason = (
        "download=False was passed"
        if cause is None
        else f"downloading and preparing it failed ({type(cause).__name__}: {cause})"
    )
    archives = "\n".join(
        f"       {filename}  from  {url}" for filename, url in spec.archives
    )
    return (
        f"Dataset {spec.name!r} (TFDS {spec.tfds_name!r}) is not prepared in "
        f"data_dir {root!r} (looked for {builder.data_dir}) and {reason}.\n"
        "To prepare it offline:\n"
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
        raise DatasetNotPreparedError(
            not_prepared_message(spec, builder, error)
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
            raise DatasetNotPreparedError(not_prepared_message(spec, builder))
        prepare(spec, data_dir)
    dataset = builder.as_dataset(
        split=spec.tfds_splits[split],
        as_supervised=True,
        shuffle_files=False,
        # The pipeline caches the decoded split itself.
        read_config=tfds.ReadConfig(try_autocache=False),
    )
    transpose = spec.transpose

    def to_pair(image, label):
        if transpose:
            image = tf.transpose(image, [1, 0, 2])
        return image, tf.cast(label, tf.int32)

    return dataset.map(to_pair, num_parallel_calls=tf.data.AUTOTUNE)
