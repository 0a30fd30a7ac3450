"""`validate(config)`: everything a run needs, checked before it creates anything.

`TrainConfig` rejects impossible values on its own (negative learning rate,
dropout outside [0, 1), a seed that is not a non-negative integer, ...).
What needs the model registry or the data is checked here, once, by
`train()` before the run directory exists, so that a bad command leaves
nothing behind and the same command, corrected, can use the same
`--run-dir`:

- the global batch splits evenly over the strategy's replicas;
- `--train-size` is at most the training split's size;
- the model preset exists and its family takes the dataset's examples
  (images for the CNNs, flat vectors for `mlp`) and the recipe's
  arguments (`--dropout` only for the Wide ResNets); a model that is not a
  preset (`user_models`) is built once: it takes the data as read and
  gives one logit per class, and has sites to convert;
- the dataset exists, its augmentation suits it (no image augmentation on
  1-D signals), and its data is there: a TFDS dataset prepared in
  `--data-dir` (or downloadable, without `--data-dir`, when the network
  answers; offline it fails within seconds), every image of a
  `folder:PATH` dataset a regular file that decodes, and the size a
  folder is read at at most `pipelines.MAX_IMAGE_PIXELS` (`--image-size`
  is checked by `TrainConfig`, the folder's most common size here).
"""

import inspect

from keras_dropact import models
from keras_dropact import pipelines
from keras_dropact.training import user_models


def _check_user_model(config, info, recipe):
    """A model that is not a preset, built once (`user_models.build`): it
    fits the data and, for dropact, has sites to convert."""
    if recipe.dropout is not None:
        source = "--dropout" if config.dropout is not None else f"recipe {config.recipe!r}"
        raise ValueError(f"Dropout {recipe.dropout} (from {source}) is for the Wide ResNet "
                         f"presets; --model {config.model} has its own layers. Leave out --dropout.")
    if config.mixed_precision and user_models.kind(config.model) == "file":
        raise ValueError(f"--mixed-precision: --model {config.model} keeps the dtype policies it "
                         "was saved with; build it under mixed precision with a module:function.")
    user_models.build(config, info["shape"], info["num_classes"], recipe.weight_decay)


def _check_model(config, info, recipe):
    what = user_models.kind(config.model)
    if what is None:
        raise user_models.unknown(config.model)
    if what != "preset":
        return _check_user_model(config, info, recipe)
    preset = models.get_preset(config.model)
    arguments = config.model_arguments()
    if "dropout" in arguments and "dropout" not in _family_arguments(preset):
        with_dropout = [
            name for name, p in models.PRESETS.items() if "dropout" in _family_arguments(p)
        ]
        source = "--dropout" if config.dropout is not None else f"recipe {config.recipe!r}"
        raise ValueError(
            f"Dropout {recipe.dropout} (from {source}) needs a model with dropout "
            f"({', '.join(with_dropout)}); model {config.model!r} has none. Leave "
            "out --dropout, or pick another --recipe or --model."
        )
    try:
        models.check_build(config.model, input_shape=info["shape"], **arguments)
    except ValueError as error:
        raise ValueError(
            f"--model {config.model} does not fit --dataset {config.dataset}: {error}"
        ) from None


def _family_arguments(preset):
    return inspect.signature(models.FAMILIES[preset["family"]]).parameters


def validate(config, model_builder=None, num_replicas=1):
    """Raises a one-line error if `train(config, ...)` cannot run; writes nothing.

    Args:
        config: a `TrainConfig` (its own values are checked when it is made).
        model_builder: the custom network builder given to `train`, if any;
            then the model is the builder's business and only the data is
            checked.
        num_replicas: replicas of the distribution strategy, which share
            each global batch equally.

    Raises:
        ValueError: an unknown or unfitting model, dataset, augmentation or
            seed, or a bad image folder (naming the file).
        pipelines.DatasetNotPreparedError: a TFDS dataset that is neither
            prepared in `config.data_dir` nor downloadable.
        MissingExtraError: a package the dataset needs is not installed.
    """
    # Lists the datasets; a folder's layout, images and size.
    info = pipelines.info(config.dataset, **config.reading())
    if config.image_size is None and len(info["shape"]) == 3:
        problem = pipelines.image_size_problem(*info["shape"][:2])
        if problem:
            raise ValueError(
                f"{config.dataset}: its images' most common size, {info['shape'][0]}x"
                f"{info['shape'][1]}, {problem}; read them smaller with --image-size, e.g. "
                "--image-size 256."
            )
    recipe = config.resolved_recipe()
    if recipe.batch_size % num_replicas:
        multiple = num_replicas * -(-recipe.batch_size // num_replicas)
        raise ValueError(
            f"--batch-size {recipe.batch_size} (the global batch) does not split "
            f"evenly over the strategy's {num_replicas} replicas; use a multiple "
            f"of {num_replicas}, e.g. --batch-size {multiple}."
        )
    split_size = info["splits"]["train"]
    if config.train_size is not None and config.train_size > split_size:
        raise ValueError(
            f"--train-size {config.train_size} exceeds the {split_size} examples of "
            f"the training split of {config.dataset}; use 1 to {split_size}."
        )
    if model_builder is None:
        _check_model(config, info, recipe)
    # Pipelines check their arguments (augmentation vs data, seed) when made.
    pipelines.dataset_fn(
        config.dataset, "train", recipe.batch_size, augment=config.augmentation(info),
        data_dir=config.data_dir, shuffle=True, seed=config.seed, take=config.train_size,
        **config.reading(),
    )
    # With --data-dir the data must be prepared there: never download.
    pipelines.ensure_available(
        config.dataset, data_dir=config.data_dir, download=config.data_dir is None
    )
