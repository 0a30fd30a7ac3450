"""`evaluate(source)`: test error and loss of a trained model."""

from keras_dropact import pipelines
from keras_dropact.training import artifacts


def evaluate(source, dataset=None, data_dir=None, batch_size=256, split="test"):
    """Evaluates the model of a run directory (or a `.keras` file).

    The dataset defaults to the one the run trained on; a bare model file
    needs `dataset`. Returns a dict with `test_error`, `test_loss` and the
    number of examples seen.
    """
    artifacts.model_path(source)  # Fails early if there is no model.
    config = artifacts.run_config(source) if dataset is None else None
    if dataset is None:
        if config is None:
            raise ValueError(
                f"{source!r} is a model file, not a run directory: name the "
                f"dataset with --dataset (one of {', '.join(pipelines.names())})."
            )
        dataset, data_dir = config.dataset, data_dir or config.data_dir
    pipelines.info(dataset)  # Fails early with the valid names.
    # Offline, a missing TFDS dataset fails in seconds, not after TFDS' retries.
    pipelines.ensure_available(dataset, data_dir=data_dir)
    model = artifacts.load_model(source)
    data = pipelines.load(dataset, split, batch_size, data_dir=data_dir)
    metrics = model.evaluate(data, verbose=0, return_dict=True)
    return {
        "source": source,
        "dataset": dataset,
        "split": split,
        "test_error": 1.0 - metrics["accuracy"],
        "test_loss": metrics["loss"],
        "examples": pipelines.info(dataset)["splits"][split],
    }
