"""The named networks: presets are data, one row per network.

Each preset names its family builder (see `models.registry.FAMILIES`), the
builder's arguments, its exact trainable parameter counts per number of
classes (PyTorch's `sum(p.numel())`, 32x32x3 input unless `input_shape` says
otherwise), and the paper rows it appears in.
"""

PRESETS = {
    "resnet-20": {
        "family": "cifar_resnet",
        "kwargs": {"depth": 20, "block": "basic", "shortcut": "A"},
        "params": {10: 269_722, 100: 275_572},
        "description": "He et al. 2016a CIFAR ResNet, 6n+2, n=3, option A.",
        "paper": "CPU-scale stand-in (not in the paper)",
    },
    "resnet-56": {
        "family": "cifar_resnet",
        "kwargs": {"depth": 56, "block": "basic", "shortcut": "A"},
        "params": {10: 853_018, 100: 858_868},
        "description": "He et al. 2016a CIFAR ResNet, 6n+2, n=9, option A.",
        "paper": "CPU-scale stand-in (not in the paper)",
    },
    "resnet-110": {
        "family": "cifar_resnet",
        "kwargs": {"depth": 110, "block": "basic", "shortcut": "A"},
        "params": {10: 1_727_962, 100: 1_733_812},
        "description": "He et al. 2016a CIFAR ResNet, 6n+2, n=18, option A.",
        "paper": "Table 2 (CIFAR-10)",
    },
    "resnet-164": {
        "family": "cifar_resnet",
        "kwargs": {
            "depth": 164,
            "block": "bottleneck",
            "shortcut": "projection",
        },
        "params": {10: 1_704_154, 100: 1_727_284},
        "description": "Post-activation bottleneck ResNet, 9n+2 with n=18.",
        "paper": "Tables 1, 4, 6; Figures 4, 6",
    },
    "preresnet-164": {
        "family": "preresnet",
        "kwargs": {"depth": 164},
        "params": {10: 1_703_258, 100: 1_726_388},
        "description": "He et al. 2016b pre-activation bottleneck ResNet.",
        "paper": "Tables 1, 2, 4",
    },
    "wrn-28-10": {
        "family": "wide_resnet",
        "kwargs": {"depth": 28, "width": 10, "dropout": 0.3},
        "params": {10: 36_479_194, 100: 36_536_884},
        "description": "Wide ResNet 28-10, dropout 0.3 (CIFAR).",
        "paper": 'Tables 1, 2, 4, 5, 6 (the paper\'s "WideResNet-20-10")',
    },
    "wrn-16-8": {
        "family": "wide_resnet",
        "kwargs": {"depth": 16, "width": 8, "dropout": 0.4},
        "params": {10: 10_961_370, 100: 11_007_540},
        "description": "Wide ResNet 16-8, dropout 0.4 (SVHN).",
        "paper": "Table 3 (SVHN)",
    },
    "wrn-16-4": {
        "family": "wide_resnet",
        "kwargs": {"depth": 16, "width": 4, "dropout": 0.3},
        "params": {10: 2_748_890, 100: 2_772_020},
        "description": "Wide ResNet 16-4, dropout 0.3 (CIFAR).",
        "paper": "CPU-scale stand-in (not in the paper)",
    },
    "densenet-bc-100-12": {
        "family": "densenet_bc",
        "kwargs": {"depth": 100, "growth_rate": 12},
        "params": {10: 769_162, 100: 800_032},
        "description": "DenseNet-BC, L=100, k=12 (final width 342).",
        "paper": "Tables 1, 2, 3, 4",
    },
    "densenet-bc-190-40": {
        "family": "densenet_bc",
        "kwargs": {"depth": 190, "growth_rate": 40},
        "params": {10: 25_624_430, 100: 25_821_620},
        "description": "DenseNet-BC, L=190, k=40 (final width 2190).",
        "paper": "Tables 1, 2",
    },
    "resnext-29-8x64d": {
        "family": "resnext",
        "kwargs": {"depth": 29, "cardinality": 8, "base_width": 64},
        "params": {10: 34_426_698, 100: 34_518_948},
        "description": "ResNeXt-29, cardinality 8, bottleneck width 64d.",
        "paper": "Tables 1, 2, 3, 4",
    },
    "resnet-18": {
        "family": "resnet",
        "kwargs": {
            "stage_blocks": (2, 2, 2, 2),
            "stage_widths": (64, 128, 256, 512),
            "stem_width": 64,
            "block": "basic",
            "shortcut": "projection",
        },
        "params": {10: 11_173_962, 100: 11_220_132},
        "description": "Cutout's CIFAR ResNet-18 (3x3 stem, no max-pool).",
        "paper": "Table 5 (Cutout)",
    },
    "simple-cnn": {
        "family": "simple_cnn",
        "kwargs": {"widths": (32, 64, 128), "hidden": 256},
        "params": {10: 620_586, 100: 643_716},
        "description": "[conv3x3-BN-act-avgpool] x 3 (32/64/128), FC 256, FC.",
        "paper": "Figure 2 (choice of p)",
    },
    "simple-cnn-nobn": {
        "family": "simple_cnn",
        "kwargs": {"widths": (32, 64, 128), "hidden": 256, "batch_norm": False},
        "params": {10: 620_362, 100: 643_492},
        "description": "simple-cnn without its BatchNorm layers: [conv3x3 (bias)-act-avgpool] x 3, FC 256, FC.",
        "paper": "Figure 2's network without BatchNorm (CPU-scale study)",
    },
    "mlp": {
        "family": "mlp",
        "kwargs": {
            "hidden": (1000, 800, 200),
            "input_shape": (1,),
            "num_classes": 1,
        },
        "params": {1: 963_201},
        "description": "Regression MLP 1-1000-800-200-1 (scalar x, scalar y).",
        "paper": "Figure 3 (regression)",
    },
    "simple-cnn-1d": {
        "family": "simple_cnn_1d",
        "kwargs": {"widths": (32, 64, 128), "hidden": 256, "input_shape": (40, 1)},
        "params": {10: 197_930},
        "description": "Figure 2's network in 1-D: [conv3-BN-act-avgpool2] x 3 (32/64/128), FC 256, FC; (40, 1) signals.",
        "paper": "Figure 2's network on MNIST-1D (CPU scale)",
    },
    "mnist1d-mlp": {
        "family": "mnist1d_mlp",
        "kwargs": {"hidden": 100, "input_shape": (40, 1)},
        "params": {10: 15_210},
        "description": "MNIST-1D's reference MLPBase: 40-100-100 (residual)-10.",
        "paper": "MNIST-1D reference model (Greydanus 2020; CPU scale)",
    },
    "mnist1d-cnn": {
        "family": "mnist1d_cnn",
        "kwargs": {"channels": 25, "kernel_sizes": (5, 3, 3), "input_shape": (40, 1)},
        "params": {10: 5_210},
        "description": "MNIST-1D's reference ConvBase: 3 x Conv1d(25, stride 2, padding 1), linear.",
        "paper": "MNIST-1D reference model (Greydanus 2020; CPU scale)",
    },
}
