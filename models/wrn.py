"""Wide residual networks (Zagoruyko & Komodakis 2016), WRN-depth-width.

Pre-activation basic blocks BN-act-conv3x3 (stride), BN-act-[dropout]-conv3x3,
added to the shortcut. A block that changes the shape projects with a bare
1x1 conv fed by the block's first BN-act output (as the official code does);
the stem is a bare 3x3 conv to 16 channels and a final BN-act precedes the
pooling. The dropout between the convolutions is kept under Drop-Activation,
as in the official Drop-Activation code.
"""

import numbers

import keras

from keras_dropact.models.common import LayerFactory
from keras_dropact.models.common import check_depth


def wide_resnet(
    depth,
    width,
    dropout=0.0,
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name=None,
):
    """WRN-`depth`-`width`: 3 stages of n blocks, widths 16k / 32k / 64k.

    Args:
        depth: 6n + 4 (e.g. 16, 22, 28, 40). "WideResNet-20-10" does not
            exist: depth 20 raises.
        width: the widening factor k.
        dropout: dropout rate between a block's two convolutions (0.3 on
            CIFAR, 0.4 on SVHN in the WRN paper); 0 for none.
        input_shape, num_classes, act_layer, seed, weight_decay: see
            `models.build`.
        name: the model's name (default `wrn-<depth>-<width>`).
    """
    n = check_depth("Wide ResNet", depth, 6, 4)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(
            "Invalid value received for argument `width` (the widening "
            f"factor): expected an integer >= 1. Received: width={width!r}"
        )
    if (
        isinstance(dropout, bool)
        or not isinstance(dropout, numbers.Real)
        or not 0 <= dropout < 1
    ):
        raise ValueError(
            "Invalid value received for argument `dropout`: expected a rate "
            f"in [0, 1). Received: dropout={dropout!r}"
        )
    f = LayerFactory(act_layer, seed, weight_decay)
    inputs = keras.Input(input_shape)
    x = f.conv(inputs, 16, 3, name="stem_conv")
    for s, stage_width in enumerate((16 * width, 32 * width, 64 * width), 1):
        for b in range(1, n + 1):
            strides = 2 if s > 1 and b == 1 else 1
            x = _block(
                f, x, stage_width, strides, dropout, f"stage{s}_block{b}"
            )
    x = f.bn(x, name="final_bn")
    x = f.act(x, name="final_act")
    outputs = f.classifier(x, num_classes)
    return keras.Model(inputs, outputs, name=name or f"wrn-{depth}-{width}")


def _block(f, x, width, strides, dropout, name):
    preact = f.bn(x, name=f"{name}_bn1")
    preact = f.act(preact, name=f"{name}_act1")
    y = f.conv(preact, width, 3, strides, name=f"{name}_conv1")
    y = f.bn(y, name=f"{name}_bn2")
    y = f.act(y, name=f"{name}_act2")
    y = f.dropout(y, dropout, name=f"{name}_dropout")
    y = f.conv(y, width, 3, name=f"{name}_conv2")
    if strides != 1 or x.shape[-1] != width:
        x = f.conv(preact, width, 1, strides, name=f"{name}_shortcut_conv")
    return keras.layers.Add(name=f"{name}_add")([x, y])
