"""DenseNet-BC for CIFAR-sized inputs (Huang et al. 2017).

A bare 3x3 stem conv to 2k channels, three dense blocks of (L - 4) / 6
bottleneck layers BN-act-conv1x1(4k)-BN-act-conv3x3(k) whose outputs are
concatenated to their inputs, transitions BN-act-conv1x1 to
floor(compression * c) channels followed by 2x2 average pooling, and a final
BN-act before the pooling.
"""

import math

import keras

from keras_dropact.models.common import LayerFactory
from keras_dropact.models.common import check_depth


def densenet_bc(
    depth,
    growth_rate,
    compression=0.5,
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name=None,
):
    """DenseNet-BC-`depth`-`growth_rate`.

    Args:
        depth: 6n + 4, n bottleneck layers per dense block (100, 190, ...).
        growth_rate: k, channels each layer adds (12, 40, ...).
        compression: transitions keep floor(compression * c) channels.
        input_shape, num_classes, act_layer, seed, weight_decay: see
            `models.build`.
        name: the model's name (default `densenet-bc-<depth>-<k>`).
    """
    n = check_depth("DenseNet-BC", depth, 6, 4)
    if not 0 < compression <= 1:
        raise ValueError(
            "Invalid value received for argument `compression`: expected a "
            f"number in (0, 1]. Received: compression={compression!r}"
        )
    f = LayerFactory(act_layer, seed, weight_decay)
    inputs = keras.Input(input_shape)
    x = f.conv(inputs, 2 * growth_rate, 3, name="stem_conv")
    for s in range(1, 4):
        for i in range(1, n + 1):
            x = _dense_layer(f, x, growth_rate, f"block{s}_layer{i}")
        if s < 3:
            x = _transition(
                f, x, math.floor(compression * x.shape[-1]), f"transition{s}"
            )
    x = f.bn(x, name="final_bn")
    x = f.act(x, name="final_act")
    outputs = f.classifier(x, num_classes)
    return keras.Model(
        inputs, outputs, name=name or f"densenet-bc-{depth}-{growth_rate}"
    )


def _dense_layer(f, x, growth_rate, name):
    y = f.bn(x, name=f"{name}_bn1")
    y = f.act(y, name=f"{name}_act1")
    y = f.conv(y, 4 * growth_rate, 1, name=f"{name}_conv1")
    y = f.bn(y, name=f"{name}_bn2")
    y = f.act(y, name=f"{name}_act2")
    y = f.conv(y, growth_rate, 3, name=f"{name}_conv2")
    return keras.layers.Concatenate(name=f"{name}_concat")([x, y])


def _transition(f, x, filters, name):
    x = f.bn(x, name=f"{name}_bn")
    x = f.act(x, name=f"{name}_act")
    x = f.conv(x, filters, 1, name=f"{name}_conv")
    return keras.layers.AveragePooling2D(2, name=f"{name}_pool")(x)
