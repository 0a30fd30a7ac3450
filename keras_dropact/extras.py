"""Optional dependencies: one clear error naming the extra to install.

The core (`pip install keras-dropact`) needs only Keras and NumPy: the
layers, `convert` and the model factory run on any Keras backend. Training,
the data pipelines, the experiments and ONNX export need the extras
`train`, `repro` and `onnx`; `require` fails with one line saying which.
"""

import importlib


class MissingExtraError(ImportError):
    """A feature needs an optional dependency that is not installed."""


def require(extra, *modules, feature=None):
    """Imports `modules`, or raises `MissingExtraError` naming `extra`.

    Args:
        extra: the name of the extra that installs the modules (`"train"`).
        *modules: module names the feature imports (`"tensorflow"`).
        feature: what needs them, for the message (default: the extra).
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise MissingExtraError(
                f"{feature or 'this feature'} needs {module!r}, which is not "
                f"installed ({error}). Install it with: "
                f"pip install 'keras-dropact[{extra}]'"
            ) from error
