"""Numerical checks of Section 5 (Properties 5.1 and 5.2) through the real layer."""

import csv
import os

import numpy as np

from keras_dropact import theory
from keras_dropact.repro import plots

SHIFT_PS = tuple(round(0.05 * i, 2) for i in range(2, 21))
PENALTY_PS = (0.5, 0.8, 0.95)


def shift_ratio_rows(num_samples=200_000, seed=0):
    """Eq. (15) against the Monte-Carlo ratio through `DropActivation`, per p."""
    rows = []
    for p in SHIFT_PS:
        estimate = theory.simulated_shift_ratio(p, num_samples=num_samples, seed=seed)
        closed = theory.shift_ratio(p)
        rows.append(dict(p=p, closed_form=closed, simulated=estimate.value, stderr=estimate.stderr,
                         z=_z(estimate.value, closed, estimate.stderr)))
    return rows


def _z(estimate, expected, stderr):
    """(estimate - expected) / stderr; NaN when there is no spread (p = 1)."""
    return (estimate - expected) / stderr if stderr > 0 else float("nan")


def _network(orthogonal, rng, inputs=5, hidden=16, outputs=3, n=32):
    w1 = rng.normal(size=(hidden, inputs)).astype(np.float32)
    if orthogonal:
        # Orthogonal columns need outputs >= hidden: a random orthogonal W2.
        w2 = np.linalg.qr(rng.normal(size=(hidden, hidden)))[0].astype(np.float32)
    else:
        w2 = rng.normal(size=(outputs, hidden)).astype(np.float32)
    x = rng.normal(size=(n, inputs)).astype(np.float32)
    y = rng.normal(size=(n, w2.shape[0])).astype(np.float32)
    return w1, w2, x, y


def penalty_rows(num_masks=20_000, seed=0):
    """Eq. (9) by Monte Carlo against eq. (10) with the exact and the printed penalty."""
    rows = []
    for case, orthogonal in (("Gaussian W2 (3x16)", False), ("orthogonal W2 (16x16)", True)):
        w1, w2, x, y = _network(orthogonal, np.random.default_rng(seed))
        for p in PENALTY_PS:
            mc = theory.expected_training_loss(w1, w2, x, y, p, num_masks=num_masks, seed=seed)
            base = theory.inference_loss(w1, w2, x, y, p)
            exact = base + theory.exact_implicit_penalty(w1, w2, x, p)
            printed = base + theory.implicit_penalty(w1, w2, x, p)
            rows.append(dict(case=case, p=p, monte_carlo=mc.value, stderr=mc.stderr, exact=exact,
                             printed=printed, z_exact=_z(mc.value, exact, mc.stderr),
                             z_printed=_z(mc.value, printed, mc.stderr)))
    return rows


def run(out, seed=0):
    """Writes theory.csv, theory.md and shift_ratio.png under OUT/theory."""
    directory = os.path.join(out, "theory")
    os.makedirs(directory, exist_ok=True)
    print("[theory] Property 5.2: shift ratio, eq. (15) vs DropActivation", flush=True)
    shift = shift_ratio_rows(seed=seed)
    print("[theory] Property 5.1: implicit penalty", flush=True)
    penalty = penalty_rows(seed=seed)
    with open(os.path.join(directory, "shift_ratio.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["p", "closed_form", "simulated", "stderr", "z"])
        for r in shift:
            writer.writerow([f"{r['p']:.2f}", f"{r['closed_form']:.5f}", f"{r['simulated']:.5f}",
                             f"{r['stderr']:.5f}", f"{r['z']:.2f}"])
    plots.shift_ratio_curve(
        np.linspace(0.01, 1.0, 200), [theory.shift_ratio(p) for p in np.linspace(0.01, 1.0, 200)],
        [(r["p"], r["simulated"], r["stderr"]) for r in shift], os.path.join(directory, "shift_ratio.png"),
    )
    lines = [
        "| p | eq. (15) | DropActivation (Monte Carlo, 200k samples) | z |",
        "|---|---|---|---|",
        *(f"| {r['p']:.2f} | {r['closed_form']:.4f} | {r['simulated']:.4f} +- {r['stderr']:.4f} | {r['z']:+.2f} |"
          for r in shift),
        "",
        "| network | p | E_P training loss (Monte Carlo, eq. 9) | inference loss + exact penalty | z | "
        "inference loss + eq. (11) as printed | z |",
        "|---|---|---|---|---|---|---|",
        *(f"| {r['case']} | {r['p']} | {r['monte_carlo']:.2f} +- {r['stderr']:.2f} | {r['exact']:.2f} | "
          f"{r['z_exact']:+.2f} | {r['printed']:.2f} | {r['z_printed']:+.2f} |" for r in penalty),
    ]
    with open(os.path.join(directory, "theory.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return shift, penalty
