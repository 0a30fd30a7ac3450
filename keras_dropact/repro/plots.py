"""The reproduction figures, drawn with matplotlib's Agg backend (no display)."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fig2(rows, path, title):
    """Mean test error (%) against p with 95% t-interval error bars."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ps = [row["p"] for row in rows]
    means = [100 * row["mean_error"] for row in rows]
    bars = [0.0 if math.isnan(row["ci95"]) else 100 * row["ci95"] for row in rows]
    ax.errorbar(ps, means, yerr=bars, marker="o", capsize=3)
    ax.set_xlabel("p (probability of keeping the ReLU)")
    ax.set_ylabel("test error (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    _save(fig, path)


def fig3(panels, path):
    """One panel per function: truth, training points, one fit per activation."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        ax.plot(panel["grid"], panel["truth"], "k--", lw=1, label="true function")
        ax.scatter(panel["x"], panel["y"], s=14, c="k", label="training points")
        for label, prediction in panel["fits"].items():
            ax.plot(panel["grid"], prediction, lw=1.5, label=label)
        ax.set_title(panel["title"], fontsize=9)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    _save(fig, path)


def curves(series, path, ylabel, title, hlines=()):
    """Per-epoch curves: `series` maps a label to (epochs, values, style)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, (epochs, values, style) in series.items():
        ax.plot(epochs, values, style, label=label)
    for (value, label), style in zip(hlines, (":", "-.", "--")):
        ax.axhline(value, color="gray", ls=style, lw=1, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)


def shift_ratio_curve(ps, closed_form, simulated, path):
    """Property 5.2: the closed-form shift ratio and Monte-Carlo points."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ax.plot(ps, closed_form, label="eq. (15)")
    ax.errorbar([s[0] for s in simulated], [s[1] for s in simulated],
                yerr=[2 * s[2] for s in simulated], fmt="o", ms=3, capsize=2,
                label="DropActivation layer (+- 2 s.e.)")
    ax.set_xlabel("p")
    ax.set_ylabel("Var(X_test) / Var(X_train)")
    ax.set_title("Property 5.2: shift ratio", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)
