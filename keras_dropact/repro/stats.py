"""Summary statistics for repeated runs: the mean and a t-based 95% interval,
differences paired by seed, and the Markdown rows that report them."""

import collections
import math

import numpy as np
from scipy import stats as scipy_stats

# The coverage of the intervals the reports give.
CONFIDENCE = 0.95

Summary = collections.namedtuple("Summary", ["mean", "half_width", "n", "std"])
Summary.__doc__ = """The mean of n runs and the half width of its confidence interval.

Attributes:
    mean: the sample mean.
    half_width: t_{(1+c)/2, n-1} * std / sqrt(n), so the interval is
        mean +- half_width; NaN for a single run (no spread to estimate).
    n: the number of runs.
    std: the sample standard deviation (n - 1 in the denominator); NaN for
        a single run.
"""


def mean_ci(values, confidence=CONFIDENCE):
    """The mean of `values` and the half width of its Student-t interval.

    Runs with different seeds are independent draws of a test error, so the
    interval for the expected test error is mean +- t * s / sqrt(n) with the
    t quantile at n - 1 degrees of freedom (the paper's Figure 2 error bars).
    With 10 runs t = 2.262, with 5 runs t = 2.776: the normal 1.96 would be
    too narrow.

    Args:
        values: a non-empty sequence of finite numbers.
        confidence: the coverage, in (0, 1).

    Returns:
        A `Summary(mean, half_width, n, std)`.
    """
    values = np.asarray(list(values), dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"mean_ci needs a non-empty 1-D sequence of numbers, got shape {values.shape}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"mean_ci got non-finite values: {values.tolist()}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"Invalid confidence={confidence!r}: it must be in (0, 1), e.g. 0.95.")
    n = values.size
    mean = float(values.mean())
    if n == 1:
        return Summary(mean, math.nan, 1, math.nan)
    std = float(values.std(ddof=1))
    t = float(scipy_stats.t.ppf(0.5 + confidence / 2.0, df=n - 1))
    return Summary(mean, t * std / math.sqrt(n), n, std)


def format_ci(summary, scale=100.0, digits=2):
    """`"12.34 +- 0.56"` (scaled, e.g. to percent); `"12.34"` for one run."""
    mean = summary.mean * scale
    if math.isnan(summary.half_width):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} +- {summary.half_width * scale:.{digits}f}"


Paired = collections.namedtuple("Paired", ["difference", "lower", "ties"])
Paired.__doc__ = """The differences of two settings run with the same seeds.

Attributes:
    difference: the `Summary` of the per-seed differences (setting minus
        reference).
    lower: in how many seeds the setting's value is below the reference's
        (for an error: the seeds the setting won).
    ties: in how many seeds the two are equal.
"""


def paired_difference(values, reference, confidence=CONFIDENCE):
    """`values - reference` seed by seed: their mean and Student-t interval.

    Runs that share a seed share the initialisation and the data order, so
    the per-seed difference cancels what the two settings have in common;
    its interval (`mean_ci` of the n differences, n - 1 degrees of freedom)
    is what says whether one setting is better, not the overlap of the two
    settings' own intervals.

    Args:
        values, reference: sequences of equal, non-zero length, paired by
            position (the same seed at the same index).
        confidence: the coverage, in (0, 1).

    Returns:
        A `Paired(difference, lower, ties)`.
    """
    values = np.asarray(list(values), dtype=np.float64)
    reference = np.asarray(list(reference), dtype=np.float64)
    if values.shape != reference.shape:
        raise ValueError(
            f"paired_difference needs two sequences of the same length, got "
            f"{values.shape} and {reference.shape}."
        )
    return Paired(mean_ci(values - reference, confidence),
                  int(np.sum(values < reference)), int(np.sum(values == reference)))


def format_paired(paired, scale=100.0, digits=2):
    """`"-0.50 +- 0.80, lower in 4 of 6"`: the difference (`format_ci`) and its count."""
    return f"{format_ci(paired.difference, scale, digits)}, lower in {paired.lower} of {paired.difference.n}"


def markdown_table(header, rows):
    """A Markdown table: the `header` cells, then one line per row of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
