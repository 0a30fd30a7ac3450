"""Training callbacks for studying Drop-Activation."""

import keras
from keras import ops


class ShiftRatioMonitor(keras.callbacks.Callback):
    """Logs the variance shift of one layer's output at every epoch end.

    Runs a fixed batch through the model up to `layer_name` twice, in training
    mode (random Drop-Activation masks, BatchNorm on batch statistics) and in
    inference mode, computes the variance of each channel of the output,
    averages it over the channels and logs (paper Figure 6, Section 5.2)

        shift_ratio = mean_c Var_test[c] / mean_c Var_train[c].

    The value is written into the epoch `logs`, so `History`, `CSVLogger` and
    `TensorBoard` record it when they come after this callback in the
    `callbacks` list (`History` always does), and appended to `.history`.

    The training-mode pass would update BatchNorm moving statistics and
    advance the layers' random seed states; the callback restores every
    non-trainable variable it touched, so training with the monitor is the
    same as training without it.

    Args:
        layer_name: the name of a top-level layer of the (functional or
            Sequential) model whose output is monitored.
        x_batch: a fixed batch of model inputs (an array, or a list/dict
            matching `model.inputs`).
        channel_axis: the axis of the output that holds the channels; the
            variance is taken over all other axes. Defaults to -1
            (channels last).
        log_name: the key written into the epoch logs. Defaults to
            `"shift_ratio"`.

    Example:

    >>> monitor = ShiftRatioMonitor("stage2_output", x_train[:256])
    >>> model.fit(x_train, y_train, epochs=10, callbacks=[monitor])
    >>> monitor.history  # one shift ratio per epoch
    """

    def __init__(
        self, layer_name, x_batch, channel_axis=-1, log_name="shift_ratio"
    ):
        super().__init__()
        if not isinstance(layer_name, str):
            raise ValueError(
                "Invalid value received for argument `layer_name`: expected "
                f"the name of a layer (a string). Received: {layer_name!r}"
            )
        if isinstance(channel_axis, bool) or not isinstance(channel_axis, int):
            raise ValueError(
                "Invalid value received for argument `channel_axis`: expected "
                f"an int axis such as -1 or 1. Received: {channel_axis!r}"
            )
        self.layer_name = layer_name
        self.x_batch = x_batch
        self.channel_axis = channel_axis
        self.log_name = log_name
        self.history = []
        self._submodel = None

    def on_train_begin(self, logs=None):
        self.history = []
        self._submodel = self._build_submodel()

    def on_epoch_end(self, epoch, logs=None):
        ratio = self.compute_shift_ratio()
        self.history.append(ratio)
        if logs is not None:
            logs[self.log_name] = ratio

    def compute_shift_ratio(self):
        """Mean per-channel Var in inference over that in training mode.

        Callable outside `fit` too (after `set_model`); leaves the model's
        variables as they were.
        """
        if self._submodel is None:
            self._submodel = self._build_submodel()
        state = self._submodel.non_trainable_variables
        saved = [ops.convert_to_numpy(v) for v in state]
        try:
            var_train = self._mean_channel_variance(training=True)
        finally:
            for variable, value in zip(state, saved):
                variable.assign(value)
        var_test = self._mean_channel_variance(training=False)
        return var_test / var_train

    def _mean_channel_variance(self, training):
        outputs = self._submodel(self.x_batch, training=training)
        outputs = ops.cast(outputs, "float32")
        rank = len(ops.shape(outputs))
        channel_axis = self.channel_axis % rank
        axes = tuple(i for i in range(rank) if i != channel_axis)
        variance = ops.mean(ops.var(outputs, axis=axes))
        return float(ops.convert_to_numpy(variance))

    def _build_submodel(self):
        model = self.model
        names = [layer.name for layer in model.layers]
        if self.layer_name not in names:
            shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            raise ValueError(
                f"Invalid value received for argument `layer_name`: model "
                f"{model.name!r} has no top-level layer named "
                f"{self.layer_name!r}. Its layers include: {shown}"
            )
        try:
            inputs = model.input  # One tensor, or the model's structure.
        except (AttributeError, ValueError):
            inputs = None
        if inputs is None:
            raise ValueError(
                "ShiftRatioMonitor needs a functional or Sequential model "
                f"with defined inputs; model {model.name!r} "
                f"({type(model).__name__}) has none."
            )
        output = model.get_layer(self.layer_name).output
        return keras.Model(inputs, output, name=f"{self.layer_name}_monitor")
