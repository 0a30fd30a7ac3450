"""`evaluate(source)`: test error and loss of a trained model."""

from keras_dropact import pipelines
from keras_dropact.training import artifacts
from keras_dropact.training import run_dataset
from keras_dropact.training import sources
from keras_dropact.training.config import check_int


def evaluate(source, dataset=None, data_dir=None, batch_size=256, split="test", take=None):
    """Evaluates the model of a run directory (or a `.keras` file).

    The dataset defaults to the one the run trained on, read as the run
    recorded it (`run_dataset`): at the image size and with the channels it
    was read at (`--image-size`, `--channels`, a folder's size), and refused
    if a folder's classes or split sizes have changed since. A bare model file needs `dataset` (a folder is then read at the
    model's input size). `take=N` evaluates the first N examples of the
    split only (a run trained with `--train-size N` saw those of its training
    split). Returns a dict with `test_error`, `test_loss` and the number of
    examples seen.
    """
    check_int("batch_size", batch_size)  # Before the model is read.
    resolved = sources.resolve(source, dataset)
    record, data_dir = resolved.record, data_dir or resolved.data_dir
    channels = None
    if dataset is None:
        channels = resolved.config.channels
        run_dataset.check_matches(record, source, channels=channels)
    # Offline, a missing TFDS dataset fails in seconds, not after TFDS' retries.
    pipelines.ensure_available(record.dataset, data_dir=data_dir)
    model = artifacts.load_model(resolved.model_file)
    if dataset is None:
        image_size = record.image_size
    else:  # A folder has no size of its own: the model's.
        image_size = list(model.inputs[0].shape[1:3]) if record.is_folder else None
    data = pipelines.load(record.dataset, split, batch_size, data_dir=data_dir,
                          image_size=image_size, channels=channels, take=take)
    metrics = model.evaluate(data, verbose=0, return_dict=True)
    return {
        "source": source,
        "dataset": record.dataset,
        "split": split,
        "test_error": 1.0 - metrics["accuracy"],
        "test_loss": metrics["loss"],
        "examples": record.splits[split] if take is None else min(take, record.splits[split]),
    }
