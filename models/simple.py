"""The paper's small networks: Figure 2's CNN and Figure 3's MLP.

The paper gives their layer types but not their widths (Section 4.2.1 and
Section 5); the widths here are our choice and are stated in each docstring.
"""

import keras

from keras_dropact.models.common import LayerFactory


def simple_cnn(
    widths=(32, 64, 128),
    hidden=256,
    batch_norm=True,
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name="simple-cnn",
):
    """Figure 2's network: [conv3x3-BN-act-avgpool2x2] x 3, dense-act, dense.

    Args:
        widths: channels of the three convolutions (our choice: 32/64/128).
        hidden: units of the first fully connected layer (our choice: 256).
        batch_norm: False drops the three BatchNorm layers (the convolutions
            then get biases): the same network without BatchNorm, to ask
            whether Drop-Activation's effect depends on it (Section 5.2).
        input_shape, num_classes, act_layer, seed, weight_decay: see
            `models.build`.
        name: the model's name.

    The pooled 4x4x128 map (for 32x32 input) is flattened into the first
    fully connected layer; the second one gives the logits.
    """
    f = LayerFactory(act_layer, seed, weight_decay)
    inputs = keras.Input(input_shape)
    x = inputs
    for i, width in enumerate(widths, 1):
        x = f.conv(x, width, 3, name=f"block{i}_conv", use_bias=not batch_norm)
        if batch_norm:
            x = f.bn(x, name=f"block{i}_bn")
        x = f.act(x, name=f"block{i}_act")
        x = keras.layers.AveragePooling2D(2, name=f"block{i}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = f.dense(x, hidden, name="fc1")
    x = f.act(x, name="fc1_act")
    outputs = f.dense(x, num_classes, name="logits")
    return keras.Model(inputs, outputs, name=name)


def mlp(
    hidden=(1000, 800, 200),
    *,
    input_shape=(1,),
    num_classes=1,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name="mlp",
):
    """Figure 3's regression network: dense-act for each hidden width, dense.

    Args:
        hidden: widths of the hidden layers (the paper's 1000, 800, 200).
        input_shape: `(1,)` for the paper's scalar x.
        num_classes: the number of outputs; 1 (a scalar y) for Figure 3.
        act_layer, seed, weight_decay: see `models.build`.
        name: the model's name.
    """
    f = LayerFactory(act_layer, seed, weight_decay)
    inputs = keras.Input(input_shape)
    x = inputs
    for i, units in enumerate(hidden, 1):
        x = f.dense(x, units, name=f"fc{i}")
        x = f.act(x, name=f"fc{i}_act")
    outputs = f.dense(x, num_classes, name="output")
    return keras.Model(inputs, outputs, name=name)
