"""`evaluate(source)`: test error and loss of a trained model."""

from keras_dropact import pipelines
from keras_dropact.training import artifacts
from keras_dropact.training import run_dataset
from keras_dropact.training import sources


def evaluate(source, dataset=None, data_dir=None, batch_size=256, split="test", take=None):
    """Evaluates the model of a run directory (or a `.keras` file).

    The dataset defaults to the one the run trained on, read as the run
    recorded it (`run_dataset`): a `folder:` run's images at its image
    size, and refused if the folder's classes or split sizes have changed
    since. A bare model file needs `dataset` (a folder is then read at the
    model's input size). `take=N` evaluates the first N examples of the
    split only (a run trained with `--train-size N` saw those of its training
    split). Returns a dict with `test_error`, `test_loss` and the number of
    examples seen.
    """
    resolved = sources.resolve(source, dataset)
    record, data_dir = resolved.record, data_dir or resolved.data_dir
    if dataset is None:
        run_dataset.check_matches(record, source)
    # Offline, a missing TFDS dataset fails in seconds, not after TFDS' retries.
    pipelines.ensure_available(record.dataset, data_dir=data_dir)
    model = artifacts.load_model(resolved.model_file)
    image_size = list(model.inputs[0].shape[1:3]) if record.is_folder else None
    data = pipelines.load(record.dataset, split, batch_size, data_dir=data_dir,
                          image_size=image_size, take=take)
    metrics = model.evaluate(data, verbose=0, return_dict=True)
    return {
        "source": source,
        "dataset": record.dataset,
        "split": split,
        "test_error": 1.0 - metrics["accuracy"],
        "test_loss": metrics["loss"],
        "examples": record.splits[split] if take is None else min(take, record.splits[split]),
    }
