"""Training recipes: the paper's (Section 4.2 and the setups of Tables 1-6) and a CPU-sized one.

A recipe is data: the optimiser, schedule and regularisation of one row of the
paper. Every field can be overridden from the command line. All paper recipes
use SGD with momentum 0.9 and L2 weight decay applied the PyTorch way (a
gradient term on every trainable weight, see `keras_dropact.models.pytorch_l2`), p = 0.95.
"""

import dataclasses

OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How one paper row trains.

    Attributes:
        epochs: number of passes over the training split.
        batch_size: global batch size.
        lr: initial learning rate.
        milestones: epochs at which the learning rate is multiplied by `gamma`.
        gamma: the learning-rate factor at each milestone.
        weight_decay: PyTorch-style L2 coefficient (gradient `wd * w`).
        nesterov: Nesterov momentum.
        momentum: SGD momentum.
        dropout: WRN dropout between the two convolutions, or None.
        warmup_steps: steps at `warmup_lr` before `lr` (He et al.'s ResNet-110).
        warmup_lr: the warm-up learning rate.
        optimizer: "sgd" (SGD with `momentum` and `nesterov`, the paper's) or
            "adam" (PyTorch's defaults: betas 0.9, 0.999, epsilon 1e-8; the
            momentum fields are then unused).
        description: the paper rows and sources this recipe reproduces.
    """

    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    milestones: tuple = ()
    gamma: float = 0.1
    weight_decay: float = 1e-4
    nesterov: bool = False
    momentum: float = 0.9
    dropout: float | None = None
    warmup_steps: int = 0
    warmup_lr: float = 0.01
    optimizer: str = "sgd"
    description: str = ""

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"Unknown optimizer {self.optimizer!r}. Valid optimizers: {', '.join(OPTIMIZERS)}."
            )

    def learning_rate(self, epoch, step):
        """The learning rate at a 0-based `epoch` and global `step`."""
        if step < self.warmup_steps:
            return self.warmup_lr
        drops = sum(epoch >= milestone for milestone in self.milestones)
        return self.lr * self.gamma**drops


_RESNET = dict(epochs=164, milestones=(81, 122), weight_decay=1e-4, nesterov=False)
_WRN = dict(epochs=200, milestones=(60, 120, 160), gamma=0.2, weight_decay=5e-4, nesterov=True)
_DENSENET = dict(epochs=300, milestones=(150, 225), weight_decay=1e-4, nesterov=True)

RECIPES = {
    "quick": Recipe(
        epochs=15,
        batch_size=64,
        lr=0.05,
        milestones=(10,),
        weight_decay=5e-4,
        nesterov=True,
        description="CPU-sized: a couple of minutes on 2 cores with an offline dataset.",
    ),
    "fashion-mnist": Recipe(
        epochs=20,
        batch_size=128,
        lr=0.1,
        milestones=(10, 15),
        weight_decay=5e-4,
        nesterov=True,
        description=(
            "CPU-sized, for Fashion-MNIST: quick's optimiser over 20 epochs with two decays "
            "(x0.1 at 10 and 15); with --train-size 10000, 21 min for ResNet-20 on 2 shared cores."
        ),
    ),
    "mnist1d": Recipe(
        epochs=150,
        batch_size=100,
        lr=1e-2,
        weight_decay=0.0,
        optimizer="adam",
        description=(
            "MNIST-1D's benchmark recipe (Greydanus 2020, notebooks/mnist1d-classification.ipynb "
            "and train.py): Adam, learning rate 1e-2, batch 100, no weight decay, 6000 steps "
            "(150 passes over the 4000 training signals)."
        ),
    ),
    "resnet-110": Recipe(
        **_RESNET,
        warmup_steps=400,
        description="Table 2 ResNet-110 (He et al. 2016a; lr 0.01 warm-up for 400 steps).",
    ),
    "resnet-164": Recipe(**_RESNET, description="Tables 1, 4, 6 ResNet-164 (He et al. 2016b)."),
    "preresnet-164": Recipe(**_RESNET, description="Tables 1, 2, 4 PreResNet-164."),
    "wrn-28-10": Recipe(
        **_WRN, dropout=0.3, description="Tables 1, 2, 4, 5, 6 WRN-28-10 (dropout 0.3)."
    ),
    "wrn-16-8-svhn": Recipe(
        epochs=160,
        lr=0.01,
        milestones=(80, 120),
        weight_decay=5e-4,
        nesterov=True,
        dropout=0.4,
        description="Table 3 WRN-16-8 on SVHN (dropout 0.4).",
    ),
    "densenet-bc-100-12": Recipe(
        **_DENSENET, batch_size=64, description="Tables 1-4 DenseNet-BC-100-12 (batch 64)."
    ),
    "densenet-bc-190-40": Recipe(
        **_DENSENET, batch_size=32, description="Tables 1, 2 DenseNet-BC-190-40 (batch 32)."
    ),
    "resnext-29-8x64d": Recipe(
        epochs=300,
        milestones=(150, 225),
        weight_decay=5e-4,
        nesterov=True,
        description="Tables 1, 2, 4 ResNeXt-29-8x64d.",
    ),
    "resnext-29-8x64d-svhn": Recipe(
        epochs=100,
        milestones=(40, 70),
        weight_decay=5e-4,
        nesterov=True,
        description="Table 3 ResNeXt-29-8x64d on SVHN.",
    ),
    "resnet-18-cutout": Recipe(
        **_WRN, description="Table 5 ResNet-18 with Cutout (DeVries & Taylor 2017)."
    ),
}


def names():
    return sorted(RECIPES)


def get(name):
    """The recipe called `name`; a ValueError lists the choices otherwise."""
    if name not in RECIPES:
        raise ValueError(
            f"Unknown recipe {name!r}. Valid recipes: {', '.join(names())}."
        )
    return RECIPES[name]


def default_for(model, dataset):
    """The paper's recipe for `model` on `dataset`, or "quick" if it has none."""
    if dataset == "svhn" and f"{model}-svhn" in RECIPES:
        return f"{model}-svhn"
    if model == "resnet-18":
        return "resnet-18-cutout"
    return model if model in RECIPES else "quick"
