"""Models that are not presets: `dropact train --model` for any Keras model.

`TrainConfig.model` names a preset of `keras_dropact.models` or one of

    keras.applications.NAME   built for the data: input_shape (the images as
                              the pipeline reads them), classes, weights=None,
                              classifier_activation=None (logits), plus
                              `model_kwargs` (e.g. {"alpha": 0.35})
    PATH.keras                a saved model, `keras.saving.load_model(PATH,
                              compile=False)` with Keras' safe_mode
    package.module:function   function(input_shape, num_classes, **model_kwargs)
                              returning a `keras.Model` of logits

`build` makes it for a run: the `weights` file (`.weights.h5`) loaded, then,
with `activation="dropact"`, every `convert_activation` site (default ReLU)
`convert`ed to a Drop-Activation seeded `seed + i`; "relu" trains the model
as it is. Either way the recipe's PyTorch-style weight decay regularizes
every weight a layer takes a regularizer for and has none
(`with_weight_decay`), as the presets' does. The model must take
the data as read (one input, the dataset's shape) and give one logit per class
(no softmax). `training.validate` builds it once before a run writes
anything, so a model that does not fit is one line.

Loading a `.keras` file or importing a module runs the user's code, as for any
local Python tool. A `.keras` file's and a module's SHA-256 (`digests`) are
recorded in config.json; `check_unchanged` refuses to resume from a changed
file. A run of a `module:function` model imports that module again to load its
`model.keras` (`register`): layers it registers are found.
"""

import contextlib
import importlib
import importlib.util
import os
import re
import sys

import keras

from keras_dropact import models
from keras_dropact.convert import activation_sites
from keras_dropact.convert import convert
from keras_dropact.errors import error_text
from keras_dropact.training.run_files import sha256

APPLICATIONS = "keras.applications."
KINDS = ("preset", "application", "file", "function")
# Arguments `build` gives the builder itself; `model_kwargs` cannot set them.
RESERVED = {
    "application": ("input_shape", "input_tensor", "classes", "weights", "include_top",
                    "classifier_activation"),
    "function": ("input_shape", "num_classes"),
}
# The config.json keys of the files' SHA-256 (`digests`): recorded, no flag sets them.
DIGEST_KEYS = ("model_sha256", "weights_sha256")
_FUNCTION = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def kind(name):
    """What the model name `name` is: one of `KINDS`, or None (another
    name: a `model_builder`'s, or a typo `check` refuses)."""
    if name in models.PRESETS:
        return "preset"
    if name.startswith(APPLICATIONS):
        return "application"
    if name.endswith(".keras"):
        return "file"
    return "function" if _FUNCTION.fullmatch(name) else None


def label(name):
    """A folder-name-safe short name of the model (run directories)."""
    what = kind(name)
    if what == "application":
        return name[len(APPLICATIONS):]
    if what == "file":
        return os.path.basename(name)[: -len(".keras")] or "model"
    return name.rpartition(":")[2] if what == "function" else name


def unknown(name):
    """The one-line error for a model name that is none of `KINDS`."""
    return ValueError(
        f"Unknown model {name!r}. Expected a preset ({', '.join(models.PRESETS)}), "
        "keras.applications.NAME, a .keras file or package.module:function."
    )


# Digests ------------------------------------------------------------------


@contextlib.contextmanager
def _working_folder_importable():
    """The current folder on `sys.path` for the `with` block, as `python -m`
    has it (the `dropact` script does not): a builder next to the user is found."""
    added = os.getcwd() not in sys.path and "" not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        yield
    finally:
        if added:
            sys.path.remove(os.getcwd())


def _module_file(name):
    """The source file of the module of `package.module:function` `name`, found
    (its packages imported) but not run."""
    module = name.partition(":")[0]
    with _working_folder_importable():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError) as error:
            spec, reason = None, f" ({error})"
        else:
            reason = ""
    if spec is None or not spec.origin or not os.path.isfile(spec.origin):
        raise ValueError(
            f"--model {name}: cannot find the module {module!r}{reason}; run dropact from the "
            "folder that holds it, or add that folder to PYTHONPATH."
        )
    return spec.origin


def _model_file(model):
    """The file whose SHA-256 defines the model named `model`: the `.keras`
    file, the builder's module; None for other models."""
    what = kind(model)
    if what == "file":
        if not os.path.isfile(model):
            raise FileNotFoundError(f"--model {model!r}: no such .keras file.")
        return model
    return _module_file(model) if what == "function" else None


def digests(model, weights=None):
    """{"model_sha256", "weights_sha256"}: the SHA-256 of the model's file
    (`_model_file`) and of the `weights` file now; None where there is none."""
    model_file = _model_file(model)
    if weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights {weights!r}: no such file.")
    return {
        "model_sha256": None if model_file is None else sha256(model_file),
        "weights_sha256": None if weights is None else sha256(weights),
    }


def record_digests(config):
    """Sets `config`'s digests to its files' now (a new run records what it starts from)."""
    for key, value in digests(config.model, config.weights).items():
        setattr(config, key, value)


def check_unchanged(config):
    """For `--resume`: ValueError unless the model's and the weights' files
    are those the run started from (their SHA-256 in config.json)."""
    now = digests(config.model, config.weights)
    for key, flag, path in (("model_sha256", "--model", config.model),
                            ("weights_sha256", "--weights", config.weights)):
        if getattr(config, key) != now[key]:
            raise ValueError(
                f"{flag} {path!r} changed since run {config.run_dir!r} started (SHA-256 "
                f"{now[key]}, config.json records {getattr(config, key)}): resuming would "
                "rebuild another model. Put back the file the run started from, or start a new run."
            )


# Building -----------------------------------------------------------------


def import_builder(name):
    """The function of `package.module:function` `name` (its module imported)."""
    module_name, _, function_name = name.partition(":")
    _module_file(name)  # A missing module: one line.
    with _working_folder_importable():
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(f"--model {name}: importing {module_name!r} failed: "
                             f"{error_text(error)}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ValueError(f"--model {name}: module {module_name!r} has no function {function_name!r}.")
    return function


def register(name):
    """Imports the builder module of a `module:function` model `name` (the
    layers it registers load with the run's model.keras); nothing otherwise."""
    if kind(name) == "function":
        import_builder(name)


def _size(height, width):
    """`--image-size`'s text for height x width: N for a square."""
    return str(height) if height == width else f"{height}x{width}"



def _application(config, shape, num_classes):
    name = config.model[len(APPLICATIONS):]
    builder = getattr(keras.applications, name, None)
    if not name[:1].isupper() or not callable(builder):
        choices = [n for n in dir(keras.applications) if n[:1].isupper()]
        raise ValueError(f"Unknown model {config.model!r}; keras.applications has "
                         f"{', '.join(choices)}.")
    try:
        return builder(**(config.model_kwargs or {}), input_shape=tuple(shape),
                       classes=num_classes, weights=None, classifier_activation=None)
    except ValueError as error:
        minimum = re.search(r"at least (\d+)x(\d+)", str(error))
        if minimum is None:
            raise ValueError(f"--model {config.model} cannot be built for images of shape "
                             f"{tuple(shape)}: {error_text(error)}") from None
        raise ValueError(
            f"--model {config.model} needs images of at least {minimum[1]}x{minimum[2]} "
            f"pixels; {config.dataset} gives {shape[0]}x{shape[1]}: read them larger with "
            f"--image-size {_size(int(minimum[1]), int(minimum[2]))} (or more)."
        ) from None
    except TypeError as error:
        raise ValueError(f"--model-kwargs do not fit {config.model}: {error_text(error)}") from None


def _load_file(path):
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - any failure means unusable.
        raise ValueError(
            f"Cannot load --model {path!r} ({error_text(error)}). A model of custom layers "
            "loads from a package.module:function that imports them and calls "
            "keras.saving.load_model."
        ) from None


def _call_builder(config, shape, num_classes):
    function = import_builder(config.model)
    try:
        model = function(tuple(shape), num_classes, **(config.model_kwargs or {}))
    except (TypeError, ValueError) as error:
        raise ValueError(f"--model {config.model}(input_shape={tuple(shape)}, num_classes="
                         f"{num_classes}, **model_kwargs) failed: {error_text(error)}") from None
    if not isinstance(model, keras.Model):
        raise ValueError(f"--model {config.model} returned {type(model).__name__}, not a keras.Model.")
    return model


def _load_weights(model, config):
    if not config.weights.endswith(".weights.h5"):
        raise ValueError(f"--weights {config.weights!r} is not a .weights.h5 file "
                         "(what model.save_weights writes).")
    try:
        model.load_weights(config.weights)
    except Exception as error:  # noqa: BLE001 - any failure means it does not fit.
        raise ValueError(f"--weights {config.weights!r} do not fit --model {config.model} as "
                         f"built for {config.dataset}: {error_text(error)}") from None


def base_model(config, shape, num_classes):
    """The model `config.model` names, for data of `shape` and `num_classes`,
    with its `weights` loaded; not converted. ValueError: it cannot be made."""
    what = kind(config.model)
    if what not in KINDS[1:]:
        raise unknown(config.model)
    if what == "application":
        model = _application(config, shape, num_classes)
    elif what == "file":
        model = _load_file(config.model)
    else:
        model = _call_builder(config, shape, num_classes)
    check_fits(model, config, shape, num_classes)
    if config.weights is not None:
        _load_weights(model, config)
    return model


def check_fits(model, config, shape, num_classes):
    """ValueError unless `model` takes the data (one input of `shape`; None
    dimensions take any size) and gives `num_classes` logits (no softmax)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"--model {config.model} has {len(model.inputs)} inputs and "
                         f"{len(model.outputs)} outputs; a classifier of one image input "
                         "and one output of logits is needed.")
    takes, gives = tuple(model.inputs[0].shape[1:]), tuple(model.outputs[0].shape[1:])
    fits = len(takes) == len(shape) and all(t in (None, s) for t, s in zip(takes, shape))
    if not fits or gives != (num_classes,):
        fix = "; its output must have one logit per class" if gives != (num_classes,) else ""
        flags = _reading_flags(takes, tuple(shape)) if not fits else []
        fix += f"; read the images as it takes them with {' '.join(flags)}" if flags else ""
        raise ValueError(
            f"--model {config.model} does not fit --dataset {config.dataset}: the data are "
            f"{tuple(shape)} in {num_classes} classes (as read, --image-size and --channels "
            f"applied), the model takes {takes} and gives {gives}{fix}."
        )
    operation = getattr(model.outputs[0], "_keras_history", (None,))[0]
    if (isinstance(operation, keras.layers.Softmax)
            or getattr(operation, "activation", None) is keras.activations.softmax):
        raise ValueError(f"--model {config.model} ends in a softmax; training needs logits "
                         "(the loss applies the softmax): build it without.")


def _reading_flags(takes, shape):
    """The `--image-size` and `--channels` that read images of `shape` as a
    model taking `takes` needs, if flags can (both images, sizes known)."""
    if not len(takes) == len(shape) == 3 or None in takes:
        return []
    flags = [f"--image-size {_size(*takes[:2])}"] if takes[:2] != shape[:2] else []
    if takes[2] != shape[2] and takes[2] in (1, 3):
        flags.append(f"--channels {takes[2]}")
    return flags


def with_weight_decay(model, weight_decay):
    """A copy of `model` whose layers regularize, PyTorch-style
    (`models.pytorch_l2`), every weight they take a regularizer argument for
    and have none (`kernel_regularizer`, `bias_regularizer`, BatchNorm's
    `gamma_regularizer`, ...: not `activity_regularizer`), weights copied;
    `model` itself for no decay. In the layers' configs, the decay is saved
    with the model, as a preset's is.

    Raises:
        ValueError: a layer cannot be copied (`get_config`/`from_config`).
    """
    regularizer = models.pytorch_l2(weight_decay)
    if regularizer is None:
        return model
    pairs = []

    def clone_function(layer):
        config = layer.get_config()
        for key, value in config.items():
            if key.endswith("_regularizer") and key != "activity_regularizer" and value is None:
                config[key] = regularizer
        new = layer.__class__.from_config(config)
        pairs.append((layer, new))
        return new

    try:
        copy = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    except (ValueError, TypeError, NotImplementedError) as error:
        raise ValueError(f"The model cannot take the recipe's weight decay {weight_decay} (its "
                         f"layers are copied with get_config/from_config): {error_text(error)}. "
                         "Train it with --weight-decay 0.") from None
    for old, new in pairs:
        new.set_weights(old.get_weights())
    return copy


def build(config, shape, num_classes, weight_decay=None):
    """`(model, converted)`: the run's model (see the module docstring) and
    the number of sites converted to Drop-Activation (None for "relu").

    Raises:
        ValueError: one line: the model cannot be made, does not fit the
            data, or has no site to convert.
    """
    model, converted = base_model(config, shape, num_classes), None
    model = with_weight_decay(model, weight_decay)
    if config.activation == "dropact":
        sites = sum(activation_sites(model).values())
        try:
            model = convert(model, p=config.p, activation=config.convert_activation or "relu",
                            seed=config.seed)
        except ValueError as error:
            raise ValueError(f"--model {config.model}: {error} Convert another with "
                             "--convert-activation, or train it as it is with --activation relu.") from None
        converted = sites - sum(activation_sites(model).values())
    return model, converted
