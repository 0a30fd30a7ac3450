"""Serving signatures: raw images in, probabilities and class names out.

A trained model expects images normalised the way the test pipeline does it
(e.g. CIFAR: (x / 255 - mean) / std). `ServingFunctions` puts that
normalisation, and the step from logits to classes, into the graph, so a
client sends what the dataset stores and reads class names back:

    serving_default    image: uint8 [batch, H, W, C], the dataset's raw
                       stored values (CIFAR, SVHN, EMNIST, folder: 0..255;
                       digits: scikit-learn's 0..16); EMNIST images upright.
                       mnist1d is not an image: float32 [batch, 40, 1]
                       signals as generated, and no image-bytes signature.
    serve_image_bytes  image_bytes: string [batch], encoded PNG/JPEG/BMP/GIF
                       (first frame) of any size; converted to C channels
                       (`pipelines.image_ops.to_channels`), and, if its size
                       is not H x W, resized to H x W with bilinear
                       `tf.image.resize` (aspect ratio not kept), rounded and
                       clipped to uint8: the rule `folder:` data is read with.
                       Files are 8-bit: 0..255 is mapped to the stored range
                       (`from_8bit`; digits: round(v * 16 / 255)).
    serve_normalized   image: float32 [batch, H, W, C], already normalised.

Every signature returns the same dict (k = min(TOP_K, number of classes));
a batch of 0 gives outputs with a first dimension of 0:

    logits        float32 [batch, classes]
    probabilities float32 [batch, classes]  softmax of the logits
    class_id      int64   [batch]           argmax
    class_name    string  [batch]
    top_k_ids     int64   [batch, k]        most probable first
    top_k_scores  float32 [batch, k]
    top_k_names   string  [batch, k]

The model runs in its inference form (`training=False`: DropActivation as
its deterministic LeakyReLU, no random op).
"""

import dataclasses
from typing import Tuple

import numpy as np
import tensorflow as tf

from keras_dropact.pipelines import augment
from keras_dropact.pipelines import image_ops
from keras_dropact.pipelines import registry

TOP_K = 5
RAW = "serving_default"
BYTES = "serve_image_bytes"
NORMALIZED = "serve_normalized"
INPUT_NAME = "image"
BYTES_INPUT_NAME = "image_bytes"
# First bytes of the formats tf.io.decode_image reads.
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")


@dataclasses.dataclass(frozen=True)
class ServingSpec:
    """What the signatures need to know about the data behind a model."""

    dataset: str
    shape: Tuple[int, ...]
    class_names: Tuple[str, ...]
    normalisation: registry.Normalisation
    is_image: bool

    @classmethod
    def for_record(cls, record, model):
        """The spec of the data a model was trained on, checked against it.

        `record` is a `run_dataset.DatasetRecord` (the run's, or a dataset
        named for a bare model file). A folder's images have no size of
        their own: its spec takes the model's input height and width, and
        needs the record's channels.

        Raises:
            ValueError: a model whose input shape or number of classes is
                not the dataset's.
        """
        normalisation, is_image = registry.values(record.dataset)
        input_shape = tuple(model.inputs[0].shape[1:])
        num_outputs = model.outputs[0].shape[-1]
        shape = tuple(record.shape)
        if record.is_folder and len(input_shape) == len(shape):
            shape = (*input_shape[:-1], shape[-1])
        if input_shape != shape or num_outputs != len(record.class_names):
            raise ValueError(
                f"The model takes {input_shape} and gives {num_outputs} classes, "
                f"but dataset {record.dataset!r} has shape {shape} and "
                f"{len(record.class_names)} classes: name the dataset it was trained on."
            )
        return cls(record.dataset, shape, tuple(record.class_names), normalisation, is_image)

    @classmethod
    def from_metadata(cls, metadata):
        """The spec an export's `metadata.json` records."""
        parameters = metadata["normalisation_parameters"]
        normalisation = registry.Normalisation(
            max_value=parameters["max_value"],
            mean=None if parameters["mean"] is None else tuple(parameters["mean"]),
            std=None if parameters["std"] is None else tuple(parameters["std"]),
        )
        return cls(
            metadata["dataset"], tuple(metadata["input_shape"]), tuple(metadata["class_names"]),
            normalisation, metadata["input_dtype"] == "uint8",
        )

    def output_types(self):
        """{output: "dtype [shape]"} of every signature."""
        classes, k = len(self.class_names), self.top_k
        return {
            "logits": f"float32 [batch, {classes}]",
            "probabilities": f"float32 [batch, {classes}]",
            "class_id": "int64 [batch]",
            "class_name": "string [batch]",
            "top_k_ids": f"int64 [batch, {k}]",
            "top_k_scores": f"float32 [batch, {k}]",
            "top_k_names": f"string [batch, {k}]",
        }

    @property
    def top_k(self):
        return min(TOP_K, len(self.class_names))

    @property
    def raw_dtype(self):
        """uint8 for images; float32 for signals (mnist1d) used as generated."""
        return tf.uint8 if self.is_image else tf.float32

    def describe(self):
        """What an export's or a published model's metadata.json says of the
        data (`from_metadata` reads it back)."""
        normalisation = self.normalisation
        return {
            "dataset": self.dataset,
            "input_shape": list(self.shape),
            "input_dtype": self.raw_dtype.name,
            "normalisation": normalisation.describe(),
            "normalisation_parameters": {
                "max_value": normalisation.max_value,
                "mean": normalisation.mean,
                "std": normalisation.std,
            },
            "class_names": list(self.class_names),
            "top_k": self.top_k,
        }


class ServingFunctions:
    """The signature bodies for one model; `tf_functions()` traces them."""

    def __init__(self, model, spec):
        self.model = model
        self.spec = spec
        self.scale_offset = augment.normalisation_scale_offset(spec.normalisation, spec.shape[-1])

    def input_signatures(self):
        """{signature name: [TensorSpec]}; no image-bytes one for signals."""
        shape = [None, *self.spec.shape]
        result = {
            RAW: [tf.TensorSpec(shape, self.spec.raw_dtype, name=INPUT_NAME)],
            NORMALIZED: [tf.TensorSpec(shape, tf.float32, name=INPUT_NAME)],
        }
        if self.spec.is_image:
            result[BYTES] = [tf.TensorSpec([None], tf.string, name=BYTES_INPUT_NAME)]
        return result

    def functions(self):
        """{signature name: Python function of the input tensor}."""
        functions = {RAW: self.serve_raw, NORMALIZED: self.serve_normalized}
        if self.spec.is_image:
            functions[BYTES] = self.serve_image_bytes
        return functions

    def tf_functions(self):
        """{signature name: tf.function with its input signature}."""
        signatures = self.input_signatures()
        return {
            name: tf.function(fn, input_signature=signatures[name])
            for name, fn in self.functions().items()
        }

    def normalise(self, raw):
        """The test pipeline's normalisation, with its own scale and offset."""
        x = tf.cast(raw, tf.float32)
        if self.scale_offset is None:
            return x
        scale, offset = self.scale_offset
        return x * tf.constant(scale, tf.float32) + tf.constant(offset, tf.float32)

    def serve_raw(self, image):
        return self._serve(self.normalise(self.checked(image, RAW)))

    def serve_image_bytes(self, image_bytes):
        images = tf.map_fn(
            self.decode,
            image_bytes,
            fn_output_signature=tf.TensorSpec(self.spec.shape, tf.uint8),
        )
        return self._serve(self.normalise(self.from_8bit(images)))

    def serve_normalized(self, image):
        return self._serve(self.checked(image, NORMALIZED))

    def checked(self, image, signature):
        """`image`, after a run-time check of its shape.

        A loaded signature does not check the shapes it is called with, and
        neither does TF Serving: a wrong size would otherwise give a
        prediction (global pooling accepts any size) and a wrong rank can
        abort the server inside a convolution kernel.
        """
        expected = ", ".join(str(d) for d in self.spec.shape)
        # Joined as text, so that any rank compares without a shape error.
        actual = tf.strings.reduce_join(tf.strings.as_string(tf.shape(image)[1:]), separator=", ")
        message = tf.strings.join([
            f"{signature}: {INPUT_NAME} must have shape [batch, {expected}] (the model input "
            "size); got [batch, ", actual, "]",
        ])
        check = tf.debugging.Assert(tf.equal(actual, expected), [message])
        with tf.control_dependencies([check]):
            return tf.identity(image)

    def from_8bit(self, images):
        """8-bit pixels (0..255, what image files hold) -> the dataset's
        stored range (0..`max_value`), rounded to the stored integers:
        digits' 0..16, unchanged for 0..255 data."""
        stored_max = self.spec.normalisation.max_value
        if stored_max == 255:
            return images
        scaled = tf.round(tf.cast(images, tf.float32) * (stored_max / 255.0))
        return tf.cast(scaled, tf.uint8)

    def _serve(self, image):
        """The outputs for a batch. A batch of 0 is padded to 1 for the
        model and its outputs cut back to 0 rows: TensorFlow's batch norm
        fails on an empty batch, and a `tf.cond` would not convert to ONNX."""
        count = tf.shape(image)[0]
        padding = [[0, tf.maximum(1 - count, 0)]] + [[0, 0]] * len(self.spec.shape)
        outputs = self._outputs(tf.pad(image, padding))
        return {key: value[:count] for key, value in outputs.items()}

    def _outputs(self, image):
        logits = tf.cast(self.model(image, training=False), tf.float32)
        probabilities = tf.nn.softmax(logits, axis=-1)
        class_id = tf.argmax(logits, axis=-1, output_type=tf.int64)
        top = tf.math.top_k(probabilities, k=self.spec.top_k)
        names = tf.constant(self.spec.class_names, tf.string)
        return {
            "logits": logits,
            "probabilities": probabilities,
            "class_id": class_id,
            "class_name": tf.gather(names, class_id),
            "top_k_ids": tf.cast(top.indices, tf.int64),
            "top_k_scores": top.values,
            "top_k_names": tf.gather(names, top.indices),
        }

    def decode(self, data):
        """One encoded image -> uint8 [H, W, C] (see the module docstring)."""
        height, width, channels = self.spec.shape
        known = tf.reduce_any([tf.strings.substr(data, 0, len(m)) == m for m in _MAGIC])
        # The first bytes as numbers: as bytes, a file's would make the
        # error message undecodable text (a UnicodeDecodeError in Python).
        check = tf.debugging.Assert(
            known,
            [f"{BYTES}: an element of {BYTES_INPUT_NAME} is not a PNG, JPEG, GIF or BMP image; "
             "its first bytes are", tf.io.decode_raw(tf.strings.substr(data, 0, 8), tf.uint8)],
        )
        with tf.control_dependencies([check]):
            # channels=0: every format decodes (GIF and BMP refuse channels=1).
            image = tf.io.decode_image(data, expand_animations=False, dtype=tf.uint8)
        image = image_ops.to_channels(image, channels)
        size = tf.shape(image)[:2]
        same_size = tf.logical_and(tf.equal(size[0], height), tf.equal(size[1], width))
        image = tf.cond(same_size, lambda: image, lambda: image_ops.resize(image, height, width))
        return tf.ensure_shape(image, self.spec.shape)


def to_8bit(raw, stored_max):
    """NumPy uint8 images in the stored range 0..`stored_max` -> the 8-bit
    (0..255) pixels an image file of them holds; `from_8bit` inverts it
    exactly on the stored integers."""
    scaled = np.round(np.asarray(raw, np.float64) * (255.0 / stored_max))
    return scaled.astype(np.uint8)
