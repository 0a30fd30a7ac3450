"""`predict(source, files)`: the top-k classes of image files.

SOURCE is a run directory, a `.keras` file (with the dataset it was trained
on), an exported SavedModel version folder, or its model folder (the highest
version, as TF Serving picks). Every file goes through the
`serve_image_bytes` signature (decode, convert to the model's channels,
resize to its input size, map the file's 8-bit pixels to the dataset's
stored range, normalise) -- the exported one for a SavedModel, the same
functions built in memory otherwise -- so `predict` answers exactly what TF
Serving would. A run's class names are the ones it recorded when it started
(`run_dataset`). A file that cannot be read or decoded gets an error entry;
the others still get their predictions.
"""

import os

import numpy as np

from keras_dropact.training import artifacts
from keras_dropact.training import export as export_lib
from keras_dropact.training import sources


class Predictor:
    """Encoded image bytes -> class probabilities, for one SOURCE."""

    def __init__(self, source, dataset=None):
        from keras_dropact.training import serving

        resolved = sources.resolve(source, dataset, saved_model=True)
        if resolved.saved_model is not None:
            source = resolved.saved_model
            metadata_file = export_lib.metadata_path(source, "saved_model")
            if not os.path.isfile(metadata_file):
                raise FileNotFoundError(
                    f"{source!r} is a SavedModel without {metadata_file!r}: was it "
                    "written by `dropact export`?"
                )
            spec = serving.ServingSpec.from_metadata(export_lib.read_metadata(source, "saved_model"))
            self._check_image(spec, source)
            self._loaded = artifacts.load_saved_model(source)  # Keeps the functions alive.
            if serving.BYTES not in self._loaded.signatures:
                raise RuntimeError(
                    f"The SavedModel in {source!r} has no {serving.BYTES!r} signature: "
                    "was it written by `dropact export`?"
                )
            self._function = self._loaded.signatures[serving.BYTES]
        else:
            model = artifacts.load_model(resolved.model_file)
            spec = serving.ServingSpec.for_record(resolved.record, model)
            self._check_image(spec, source)
            self._function = serving.ServingFunctions(model, spec).tf_functions()[serving.BYTES]
        self.spec = spec

    @staticmethod
    def _check_image(spec, source):
        if not spec.is_image:
            raise ValueError(
                f"{source!r} was trained on {spec.dataset!r}, 1-D signals, not images: "
                "`predict` takes image files. Send float32 signals to the "
                "serving_default signature of its export instead."
            )

    def probabilities(self, data):
        """float32 [classes] for one encoded image.

        Raises:
            ValueError: the bytes are not a decodable PNG/JPEG/GIF/BMP image.
        """
        import tensorflow as tf

        try:
            outputs = self._function(tf.constant([data]))
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(f"not a decodable PNG, JPEG, GIF or BMP image ({_reason(error.message)})") from None
        except UnicodeDecodeError:  # Exports before issue 25 put a file's first bytes in the message.
            raise ValueError("not a decodable PNG, JPEG, GIF or BMP image (unknown file format)") from None
        return outputs["probabilities"].numpy()[0]


def _reason(message):
    """The line of a TF graph error that says what was wrong."""
    if "assertion failed" in message:
        return "unknown file format"
    # TF puts the op's own message just before the "[[{{node ...}}]]" line.
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    end = next((i for i, line in enumerate(lines) if line.startswith("[[")), len(lines))
    return lines[end - 1] if end > 0 else "decoding failed"


def predict(source, files, top_k=5, dataset=None):
    """[{"file", "predictions": [{"class_id", "class_name", "probability"}]}
    or {"file", "error"}] for each of `files`, in order."""
    if top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {top_k}.")
    predictor = Predictor(source, dataset)
    names = predictor.spec.class_names
    answers = []
    for path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
            probabilities = predictor.probabilities(data)
        except (OSError, ValueError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            answers.append({"file": path, "error": f"cannot read {path!r}: {reason}"})
            continue
        order = np.argsort(-probabilities, kind="stable")[:top_k]
        answers.append({
            "file": path,
            "predictions": [
                {"class_id": int(i), "class_name": names[i], "probability": float(probabilities[i])}
                for i in order
            ],
        })
    return answers
