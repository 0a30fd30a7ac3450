"""The CIFAR ResNet and Wide ResNet in plain PyTorch, with Drop-Activation as
the official code writes it: the speed reference of `gpu_step.py`.

The architectures are those of `keras_dropact.models` (docs/reference/models.md):
the same layers, widths, strides, shortcuts and trainable parameter counts
(checked by tests/test_benchmarks.py),
laid out NCHW as PyTorch code is. `DropActivation` draws its mask with
`torch.bernoulli` on a tensor filled with p and applies eq. 3 directly, as
the authors' PyTorch code does; in eval mode it is eq. 5 (a leaky ReLU).
This module is a benchmark baseline, not part of the package.
"""

import torch
import torch.nn.functional as F
from torch import nn


class DropActivation(nn.Module):
    """y = P relu(x) + (1 - P) x with P ~ Bernoulli(p) per element (eq. 3)."""

    def __init__(self, p=0.95):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training:
            return F.leaky_relu(x, 1.0 - self.p)
        mask = torch.bernoulli(torch.full_like(x, self.p))
        return mask * F.relu(x) + (1.0 - mask) * x


def activation(name, p=0.95):
    """A new nonlinearity module: "relu" or "dropact"."""
    if name == "relu":
        return nn.ReLU()
    if name == "dropact":
        return DropActivation(p)
    raise ValueError(f"Unknown activation {name!r}: expected 'relu' or 'dropact'.")


def _conv3x3(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)


def _init(model):
    """The reference codes' init: conv weights N(0, 2 / (k * k * out))."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


class _BasicBlock(nn.Module):
    """Post-activation: conv-BN-act-conv-BN, add the shortcut (option A), act."""

    def __init__(self, in_channels, channels, stride, act):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act1 = activation(act)
        self.conv2 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = activation(act)
        self.stride = stride
        self.extra_channels = channels - in_channels

    def forward(self, x):
        y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act2(x + y)


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet, depth 6n + 2, widths 16/32/64, option A."""

    def __init__(self, depth, num_classes=10, act="relu"):
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2 >= 8, got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(_conv3x3(3, 16), nn.BatchNorm2d(16), activation(act))
        blocks, in_channels = [], 16
        for stage, channels in enumerate((16, 32, 64)):
            for index in range(n):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(_BasicBlock(in_channels, channels, stride, act))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        _init(self)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class _WideBlock(nn.Module):
    """Pre-activation: BN-act-conv-BN-act-dropout-conv, 1x1 projection when
    the width or stride changes, fed by the shared BN-act output."""

    def __init__(self, in_channels, channels, stride, dropout, act):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.act1 = activation(act)
        self.conv1 = _conv3x3(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act2 = activation(act)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _conv3x3(channels, channels)
        self.shortcut = (
            nn.Conv2d(in_channels, channels, 1, stride, bias=False)
            if stride != 1 or in_channels != channels
            else None
        )

    def forward(self, x):
        preact = self.act1(self.bn1(x))
        y = self.conv2(self.dropout(self.act2(self.bn2(self.conv1(preact)))))
        return y + (x if self.shortcut is None else self.shortcut(preact))


class WideResNet(nn.Module):
    """WRN-depth-width (depth 6n + 4), dropout between a block's convs."""

    def __init__(self, depth, width, dropout=0.3, num_classes=10, act="relu"):
        super().__init__()
        if (depth - 4) % 6 or depth < 10:
            raise ValueError(f"Wide ResNet depth must be 6n + 4 >= 10, got {depth}")
        n = (depth - 4) // 6
        self.stem = _conv3x3(3, 16)
        blocks, in_channels = [], 16
        for stage, channels in enumerate((16 * width, 32 * width, 64 * width)):
            for index in range(n):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(_WideBlock(in_channels, channels, stride, dropout, act))
                in_channels = channels
        self.blocks = nn.Sequential(*blocks)
        self.final = nn.Sequential(nn.BatchNorm2d(in_channels), activation(act))
        self.fc = nn.Linear(in_channels, num_classes)
        _init(self)

    def forward(self, x):
        x = self.final(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def trainable_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
