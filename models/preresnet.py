"""Pre-activation bottleneck ResNet (He et al. 2016b, "Identity Mappings").

Each unit is BN-act-conv1x1, BN-act-conv3x3 (stride), BN-act-conv1x1, added
to the shortcut with nothing after the add. The stem is a bare conv (the first
unit pre-activates its output), a final BN-act precedes the pooling, and a
unit that changes the shape projects with a bare 1x1 conv fed by the unit's
pre-activated input (the "both_preact" units of He et al.'s code).
"""

import keras

from keras_dropact.models.common import LayerFactory
from keras_dropact.models.common import check_depth

EXPANSION = 4


def preresnet(
    depth,
    stage_widths=(64, 128, 256),
    stem_width=16,
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name=None,
):
    """A CIFAR pre-activation ResNet with bottleneck units.

    Args:
        depth: 9n + 2 (3 stages of n units of 3 convs), e.g. 164.
        stage_widths: output channels per stage (inner widths are a quarter).
        stem_width: channels of the 3x3 stem conv.
        input_shape, num_classes, act_layer, seed, weight_decay: see
            `models.build`.
        name: the model's name (default `preresnet-<depth>`).
    """
    n = check_depth("PreResNet (bottleneck)", depth, 9, 2)
    f = LayerFactory(act_layer, seed, weight_decay)
    inputs = keras.Input(input_shape)
    x = f.conv(inputs, stem_width, 3, name="stem_conv")
    for s, width in enumerate(stage_widths, 1):
        for b in range(1, n + 1):
            strides = 2 if s > 1 and b == 1 else 1
            x = _unit(f, x, width, strides, f"stage{s}_block{b}")
    x = f.bn(x, name="final_bn")
    x = f.act(x, name="final_act")
    outputs = f.classifier(x, num_classes)
    return keras.Model(inputs, outputs, name=name or f"preresnet-{depth}")


def _unit(f, x, width, strides, name):
    inner = width // EXPANSION
    preact = f.bn(x, name=f"{name}_bn1")
    preact = f.act(preact, name=f"{name}_act1")
    y = f.conv(preact, inner, 1, name=f"{name}_conv1")
    y = f.bn(y, name=f"{name}_bn2")
    y = f.act(y, name=f"{name}_act2")
    y = f.conv(y, inner, 3, strides, name=f"{name}_conv2")
    y = f.bn(y, name=f"{name}_bn3")
    y = f.act(y, name=f"{name}_act3")
    y = f.conv(y, width, 1, name=f"{name}_conv3")
    if strides != 1 or x.shape[-1] != width:
        x = f.conv(preact, width, 1, strides, name=f"{name}_shortcut_conv")
    return keras.layers.Add(name=f"{name}_add")([x, y])
