"""Networks for 1-D signals: MNIST-1D's reference models and Figure 2's CNN in 1-D.

MNIST-1D (Greydanus 2020, "Scaling Down Deep Learning") ships its benchmark
networks as plain PyTorch modules (github.com/greydanus/mnist1d,
`notebooks/models.py`): `MLPBase` and `ConvBase`. `mnist1d_mlp` and
`mnist1d_cnn` are those networks layer for layer, with PyTorch's default
initialisation (`nn.Linear`/`nn.Conv1d`: weights and biases uniform in
+-1/sqrt(fan_in)) and every ReLU an activation site of the `act_layer`.
`simple_cnn_1d` is the Drop-Activation paper's Figure 2 network
(`models.simple_cnn`) with 1-D convolutions and pooling, so that BatchNorm,
where Property 5.2's variance shift acts, is in the network.

Inputs are channels last, `(length, channels)`; MNIST-1D's are `(40, 1)`.
"""

import math

import keras

from keras_dropact.models.common import LayerFactory


def _torch_uniform(fan_in):
    """PyTorch's default init of Linear/Conv weights and biases: U(+-1/sqrt(fan_in)).

    (`kaiming_uniform_(a=sqrt(5))` gives the weights the same bound.) A
    fresh initializer per call: an unseeded Keras initializer repeats its
    values.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return keras.initializers.RandomUniform(-bound, bound)


def _torch_dense(f, x, units, name):
    fan_in = int(x.shape[-1])
    return keras.layers.Dense(
        units,
        kernel_initializer=_torch_uniform(fan_in),
        bias_initializer=_torch_uniform(fan_in),
        kernel_regularizer=f.regularizer,
        bias_regularizer=f.regularizer,
        name=name,
    )(x)


def mnist1d_mlp(
    hidden=100,
    *,
    input_shape=(40, 1),
    num_classes=10,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name="mnist1d-mlp",
):
    """MNIST-1D's `MLPBase`: two hidden layers of `hidden` units, the second residual.

    The reference's forward pass is `h = relu(linear1(x)); h = h +
    relu(linear2(h)); return linear3(h)`: both ReLUs are activation sites.
    With 40 inputs, 100 hidden units and 10 classes it has
    (40 + 1) * 100 + (100 + 1) * 100 + (100 + 1) * 10 = 15,210 parameters.

    Args:
        hidden: hidden width (the reference's 100).
        input_shape: `(length, channels)` of a signal, flattened first.
        num_classes, act_layer, seed, weight_decay: see `models.build`.
        name: the model's name.
    """
    f = LayerFactory(act_layer, seed, weight_decay)
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten(name="flatten")(inputs)
    h = f.act(_torch_dense(f, x, hidden, name="fc1"), name="fc1_act")
    residual = f.act(_torch_dense(f, h, hidden, name="fc2"), name="fc2_act")
    h = keras.layers.Add(name="fc2_add")([h, residual])
    outputs = _torch_dense(f, h, num_classes, name="logits")
    return keras.Model(inputs, outputs, name=name)


def mnist1d_cnn(
    channels=25,
    kernel_sizes=(5, 3, 3),
    *,
    input_shape=(40, 1),
    num_classes=10,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name="mnist1d-cnn",
):
    """MNIST-1D's `ConvBase`: three strided convolutions, flatten, a linear layer.

    The reference: `Conv1d(1, 25, 5, stride=2, padding=1)`, then twice
    `Conv1d(25, 25, 3, stride=2, padding=1)`, each followed by a ReLU (an
    activation site), then `Linear(125, 10)`. Lengths 40 -> 19 -> 10 -> 5, so
    (1*5 + 1) * 25 + 2 * (25*3 + 1) * 25 + (5*25 + 1) * 10 = 5,210 parameters.
    The padding is PyTorch's symmetric `padding=1` (zero padding, then a
    `valid` convolution). Keras flattens (length, channel) where PyTorch
    flattens (channel, length): the same function class, the dense weights
    permuted.

    Args:
        channels: channels of every convolution (the reference's 25).
        kernel_sizes: kernel of each convolution (the reference's 5, 3, 3).
        input_shape: `(length, channels)` of a signal.
        num_classes, act_layer, seed, weight_decay: see `models.build`.
        name: the model's name.
    """
    f = LayerFactory(act_layer, seed, weight_decay)
    inputs = keras.Input(input_shape)
    x = inputs
    for i, kernel_size in enumerate(kernel_sizes, 1):
        fan_in = int(x.shape[-1]) * kernel_size
        x = keras.layers.ZeroPadding1D(1, name=f"conv{i}_pad")(x)
        x = keras.layers.Conv1D(
            channels,
            kernel_size,
            strides=2,
            padding="valid",
            kernel_initializer=_torch_uniform(fan_in),
            bias_initializer=_torch_uniform(fan_in),
            kernel_regularizer=f.regularizer,
            bias_regularizer=f.regularizer,
            name=f"conv{i}",
        )(x)
        x = f.act(x, name=f"conv{i}_act")
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = _torch_dense(f, x, num_classes, name="logits")
    return keras.Model(inputs, outputs, name=name)


def simple_cnn_1d(
    widths=(32, 64, 128),
    hidden=256,
    *,
    input_shape=(40, 1),
    num_classes=10,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name="simple-cnn-1d",
):
    """Figure 2's network in 1-D: [conv3-BN-act-avgpool2] x 3, dense-act, dense.

    `models.simple_cnn` with `Conv1D` and `AveragePooling1D`, built the same
    way (bias-free convolutions with the reference init, PyTorch BatchNorm,
    L2 on every weight). A 40-sample signal pools to 20, 10, 5, so the
    flattened 5 x 128 map feeds the 256-unit layer: with one input channel
    and 10 classes, 3*1*32 + 3*32*64 + 3*64*128 (convolutions) +
    2 * (32 + 64 + 128) (BatchNorm) + 640*256 + 256 + 256*10 + 10 = 197,930
    parameters.

    Args:
        widths: channels of the three convolutions (as `simple-cnn`).
        hidden: units of the first fully connected layer.
        input_shape, num_classes, act_layer, seed, weight_decay: see
            `models.build`.
        name: the model's name.
    """
    f = LayerFactory(act_layer, seed, weight_decay)
    inputs = keras.Input(input_shape)
    x = inputs
    for i, width in enumerate(widths, 1):
        x = keras.layers.Conv1D(
            width,
            3,
            padding="same",  # Stride 1, odd kernel: PyTorch's padding=1.
            use_bias=False,
            kernel_initializer=keras.initializers.VarianceScaling(
                scale=2.0, mode="fan_out", distribution="untruncated_normal"
            ),
            kernel_regularizer=f.regularizer,
            name=f"block{i}_conv",
        )(x)
        x = f.bn(x, name=f"block{i}_bn")
        x = f.act(x, name=f"block{i}_act")
        x = keras.layers.AveragePooling1D(2, name=f"block{i}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = f.dense(x, hidden, name="fc1")
    x = f.act(x, name="fc1_act")
    outputs = f.dense(x, num_classes, name="logits")
    return keras.Model(inputs, outputs, name=name)
