"""He et al.'s parameter-free "option A" residual shortcut."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dropact")
class ZeroPadShortcut(keras.layers.Layer):
    """Subsamples the input and appends zero channels (shortcut "option A").

    Keeps every `strides`-th pixel (`x[:, ::s, ::s, :]`, the pixels that a
    strided 1x1 convolution would see) and appends zero channels up to
    `filters`, as fb.resnet.torch's shortcut type A does. It lives with the
    layers (not the model factory) so that every model holding it loads
    after `import keras_dropact` alone; its registered name
    `keras_dropact>ZeroPadShortcut` is unchanged.

    Args:
        filters: number of output channels, at least the input's.
        strides: spatial subsampling factor.
        **kwargs: base layer keyword arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a channels-last 4-D tensor `(batch, height, width, channels)`.
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def call(self, inputs):
        s = self.strides
        x = inputs[:, ::s, ::s, :] if s > 1 else inputs
        extra = self.filters - ops.shape(x)[-1]
        return ops.pad(x, [[0, 0], [0, 0], [0, 0], [0, extra]])

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        if channels is not None and channels > self.filters:
            raise ValueError(
                f"ZeroPadShortcut cannot shrink {channels} channels to "
                f"filters={self.filters}."
            )

        def sub(size):
            return None if size is None else -(-size // self.strides)

        return (batch, sub(height), sub(width), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "strides": self.strides})
        return config
