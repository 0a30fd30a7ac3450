"""Post-activation ResNets (He et al. 2016a) for CIFAR-sized inputs.

Each residual block is conv-BN-act-...-conv-BN, add, act (Figure 2 and 5 of
He et al.); the nonlinearity after the add is an activation site too, so
Drop-Activation replaces it as it replaces the others.

- `cifar_resnet`: 3 stages of widths 16/32/64 (x4 for bottlenecks), the
  networks of He et al.'s CIFAR section (ResNet-20/56/110 with basic blocks,
  depth 6n + 2; ResNet-164 with bottlenecks, depth 9n + 2).
- `resnet`: the general builder, e.g. the Cutout paper's ResNet-18 for CIFAR
  (the ImageNet ResNet-18 with a 3x3 stride-1 stem and no max-pool).
"""

import keras

from keras_dropact.layers import ZeroPadShortcut
from keras_dropact.models.common import LayerFactory
from keras_dropact.models.common import check_choice
from keras_dropact.models.common import check_depth

BOTTLENECK_EXPANSION = 4
BLOCKS = ("basic", "bottleneck")
SHORTCUTS = ("A", "projection")


def resnet(
    stage_blocks,
    stage_widths,
    stem_width,
    block="basic",
    shortcut="projection",
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name="resnet",
):
    """A post-activation ResNet: stem, stages of residual blocks, GAP, FC.

    Args:
        stage_blocks: number of blocks per stage, e.g. `(2, 2, 2, 2)`.
        stage_widths: output channels of each stage, e.g. `(64, 128, 256,
            512)`; a bottleneck's inner width is a quarter of it.
        stem_width: channels of the stem (a 3x3 stride-1 conv, BN, act).
        block: `"basic"` (two 3x3 convs) or `"bottleneck"` (1x1-3x3-1x1).
        shortcut: how blocks that change the shape bypass: `"A"` (subsample
            and zero-pad channels, no parameters) or `"projection"` (strided
            1x1 conv + BN).
        input_shape, num_classes, act_layer, seed, weight_decay: see
            `models.build`.
        name: the model's name.

    Stages after the first halve the resolution with a stride of 2 on the
    first block's 3x3 convolution. Returns a functional `keras.Model`
    producing logits.
    """
    check_choice("block", block, BLOCKS)
    check_choice("shortcut", shortcut, SHORTCUTS)
    if len(stage_blocks) != len(stage_widths):
        raise ValueError(
            "`stage_blocks` and `stage_widths` must have the same length. "
            f"Received: stage_blocks={stage_blocks}, "
            f"stage_widths={stage_widths}"
        )
    f = LayerFactory(act_layer, seed, weight_decay)
    inputs = keras.Input(input_shape)
    x = f.conv(inputs, stem_width, 3, name="stem_conv")
    x = f.bn(x, name="stem_bn")
    x = f.act(x, name="stem_act")
    for s, (blocks, width) in enumerate(zip(stage_blocks, stage_widths), 1):
        for b in range(1, blocks + 1):
            strides = 2 if s > 1 and b == 1 else 1
            x = _residual_block(
                f, x, width, strides, block, shortcut, f"stage{s}_block{b}"
            )
    outputs = f.classifier(x, num_classes)
    return keras.Model(inputs, outputs, name=name)


def cifar_resnet(
    depth,
    block="basic",
    shortcut="A",
    *,
    input_shape=(32, 32, 3),
    num_classes=10,
    act_layer="dropact",
    seed=None,
    weight_decay=None,
    name=None,
):
    """He et al.'s CIFAR ResNet: 3 stages of n blocks, widths 16/32/64.

    Args:
        depth: 6n + 2 for basic blocks (20, 56, 110), 9n + 2 for
            bottlenecks (164: stage outputs 64/128/256).
        block, shortcut: see `resnet`. He et al. use option A with basic
            blocks and projections with bottlenecks.
        input_shape, num_classes, act_layer, seed, weight_decay: see
            `models.build`.
        name: the model's name (default `resnet-<depth>`).
    """
    check_choice("block", block, BLOCKS)
    bottleneck = block == "bottleneck"
    # 3 stages of n blocks of 2 (basic) or 3 (bottleneck) convs, + stem + FC.
    n = check_depth(f"ResNet ({block})", depth, 9 if bottleneck else 6, 2)
    expansion = BOTTLENECK_EXPANSION if bottleneck else 1
    return resnet(
        (n, n, n),
        tuple(w * expansion for w in (16, 32, 64)),
        16,
        block,
        shortcut,
        input_shape=input_shape,
        num_classes=num_classes,
        act_layer=act_layer,
        seed=seed,
        weight_decay=weight_decay,
        name=name or f"resnet-{depth}",
    )


def _residual_block(f, x, width, strides, block, shortcut, name):
    in_width = x.shape[-1]
    if block == "basic":
        y = f.conv(x, width, 3, strides, name=f"{name}_conv1")
        y = f.bn(y, name=f"{name}_bn1")
        y = f.act(y, name=f"{name}_act1")
        y = f.conv(y, width, 3, name=f"{name}_conv2")
        y = f.bn(y, name=f"{name}_bn2")
    else:
        inner = width // BOTTLENECK_EXPANSION
        y = f.conv(x, inner, 1, name=f"{name}_conv1")
        y = f.bn(y, name=f"{name}_bn1")
        y = f.act(y, name=f"{name}_act1")
        y = f.conv(y, inner, 3, strides, name=f"{name}_conv2")
        y = f.bn(y, name=f"{name}_bn2")
        y = f.act(y, name=f"{name}_act2")
        y = f.conv(y, width, 1, name=f"{name}_conv3")
        y = f.bn(y, name=f"{name}_bn3")
    if strides != 1 or in_width != width:
        if shortcut == "A":
            x = ZeroPadShortcut(width, strides, name=f"{name}_shortcut")(x)
        else:
            x = f.conv(x, width, 1, strides, name=f"{name}_shortcut_conv")
            x = f.bn(x, name=f"{name}_shortcut_bn")
    y = keras.layers.Add(name=f"{name}_add")([x, y])
    return f.act(y, name=f"{name}_out_act")
