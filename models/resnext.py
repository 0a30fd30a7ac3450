"""ResNeXt for CIFAR (Xie et al. 2017), ResNeXt-depth-CxDd.

A 3x3 stem conv to 64 channels with BN-act, three stages of post-activation
blocks 1x1 (C * D) - grouped 3x3 (C groups, stride) - 1x1 (output), each
followed by BN and the first two by act, added to the shortcut and activated.
Stage s (0, 1, 2) has D = base_width * 2^s and outputs 64 * widen_factor * 2^s
channels; the first block of every stage projects with a strided 1x1 conv + BN.
"""

import keras

from keras_dropact.models.common import LayerFactory
from keras_dropact.models.common import check_depth


def resnext(
    depth=29,
    cardinality=8,
    base_width=64,
    widen_factor=4,
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name=None,
):
    """ResNeXt-`depth`-`cardinality`x`base_width`d.

    Args:
        depth: 9n + 2 (3 stages of n blocks of 3 convs), e.g. 29.
        cardinality: C, the number of groups of the 3x3 convolutions.
        base_width: D of the first stage (the width of one group).
        widen_factor: stage outputs are 64 * widen_factor * (1, 2, 4).
        input_shape, num_classes, act_layer, seed, weight_decay: see
            `models.build`.
        name: the model's name (default `resnext-<depth>-<C>x<D>d`).
    """
    n = check_depth("ResNeXt", depth, 9, 2)
    f = LayerFactory(act_layer, seed, weight_decay)
    inputs = keras.Input(input_shape)
    x = f.conv(inputs, 64, 3, name="stem_conv")
    x = f.bn(x, name="stem_bn")
    x = f.act(x, name="stem_act")
    for s in range(3):
        inner = cardinality * base_width * 2**s
        width = 64 * widen_factor * 2**s
        for b in range(1, n + 1):
            strides = 2 if s > 0 and b == 1 else 1
            x = _block(
                f,
                x,
                inner,
                width,
                cardinality,
                strides,
                f"stage{s + 1}_block{b}",
            )
    outputs = f.classifier(x, num_classes)
    return keras.Model(
        inputs,
        outputs,
        name=name or f"resnext-{depth}-{cardinality}x{base_width}d",
    )


def _block(f, x, inner, width, cardinality, strides, name):
    y = f.conv(x, inner, 1, name=f"{name}_conv1")
    y = f.bn(y, name=f"{name}_bn1")
    y = f.act(y, name=f"{name}_act1")
    y = f.conv(y, inner, 3, strides, groups=cardinality, name=f"{name}_conv2")
    y = f.bn(y, name=f"{name}_bn2")
    y = f.act(y, name=f"{name}_act2")
    y = f.conv(y, width, 1, name=f"{name}_conv3")
    y = f.bn(y, name=f"{name}_bn3")
    if strides != 1 or x.shape[-1] != width:
        x = f.conv(x, width, 1, strides, name=f"{name}_shortcut_conv")
        x = f.bn(x, name=f"{name}_shortcut_bn")
    y = keras.layers.Add(name=f"{name}_add")([x, y])
    return f.act(y, name=f"{name}_out_act")
