"""Reproducing the paper's experiments (`dropact repro EXPERIMENT`), and
comparing activations on any setup (`dropact compare`, `compare.py`).

    fig2    test error against p (simple CNN), mean and 95% interval per p
    fig3    regression toy, ReLU vs Drop-Activation (MLP 1000-800-200)
    fig4    training/test error curves, ReLU vs Drop-Activation
    fig6    the shift ratio of a layer during training (ShiftRatioMonitor)
    theory  Properties 5.1 and 5.2 checked numerically through the layer
    table   baseline / RReLU / Drop-Activation with N seeds per cell

Every training run has its own directory under --out and is skipped once
its results.json exists, so a command can be killed and rerun. Needs the
`repro` extra (matplotlib, scipy).
"""

from keras_dropact.extras import require

require("repro", "matplotlib", "scipy", feature="keras_dropact.repro (dropact repro, dropact compare)")
