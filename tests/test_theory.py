"""Section 5 of the paper checked numerically: Properties 5.1 and 5.2.

Backend-neutral (keras.ops); the Monte-Carlo checks run through the real
DropActivation layer with fixed seeds and tolerances of 4 standard errors.
"""

import itertools
import math

import numpy as np
import pytest

from keras_dropact import theory

# ------------------------------------------------ Property 5.2, shift ratio

# Where eq. (15) is smallest: the root in (0, 1) of (pi+1) p^2 - 4 pi p + 2 pi.
P_MIN = (2 * math.pi - math.sqrt(2 * math.pi * (math.pi - 1))) / (math.pi + 1)


def test_shift_ratio_matches_paper_value_at_p_095():
    assert round(theory.shift_ratio(0.95), 4) == 0.9377


def test_shift_ratio_is_one_without_dropping():
    assert theory.shift_ratio(1.0) == pytest.approx(1.0, abs=1e-12)
    assert theory.shift_ratio(1e-9) == pytest.approx(1.0, abs=1e-8)


def test_shift_ratio_range_claim_over_p():
    ps = np.linspace(1e-6, 1.0, 1001)
    ratios = np.array([theory.shift_ratio(p) for p in ps])
    # The paper: "lies on the interval [0.8, 1]".
    assert np.all(ratios >= 0.8) and np.all(ratios <= 1.0 + 1e-12)
    # Exactly: the minimum 0.8126 at p = 0.6314 (derivative of eq. 15).
    assert P_MIN == pytest.approx(0.6314, abs=1e-4)
    assert theory.shift_ratio(P_MIN) == pytest.approx(0.81257, abs=1e-5)
    assert ratios.min() >= theory.shift_ratio(P_MIN) - 1e-12


@pytest.mark.parametrize("p", [0.95, P_MIN, 0.3])
def test_simulated_shift_ratio_matches_closed_form(p):
    n = 100_000
    estimate = theory.simulated_shift_ratio(p, d=64, num_samples=n, seed=0)
    expected = theory.shift_ratio(p)
    # A sample variance of n near-Gaussian values has relative standard error
    # sqrt(2/n); a ratio of two (correlated, hence better) at most 2/sqrt(n).
    bound = 2.0 / math.sqrt(n) * expected
    assert abs(estimate.value - expected) < 4 * bound  # 0.02 to 0.025
    # The batch-means standard error agrees with that bound.
    assert 0.1 * bound < estimate.stderr < bound
    assert abs(estimate.value - expected) < 4 * estimate.stderr


def test_simulated_shift_ratio_is_one_at_p_1():
    estimate = theory.simulated_shift_ratio(1.0, d=8, num_samples=1000)
    assert estimate.value == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, float("nan"), "0.9", True, None])
def test_bad_p_is_rejected(p):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        theory.shift_ratio(p)
    with pytest.raises(ValueError, match=r"Received: p="):
        theory.simulated_shift_ratio(p)


@pytest.mark.parametrize(
    "kwargs",
    [{"d": 0}, {"num_samples": 10}, {"num_samples": 1e5}, {"seed": None}],
)
def test_bad_simulation_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError, match="Expected an int"):
        theory.simulated_shift_ratio(0.95, **kwargs)


# ------------------------------------------- Property 5.1, implicit penalty


def one_hidden_layer_problem(hidden=6, inputs=3, outputs=4, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(hidden, inputs)),
        rng.normal(size=(outputs, hidden)),
        rng.normal(size=(n, inputs)),
        rng.normal(size=(n, outputs)),
    )


def enumerated_training_loss(W1, W2, x, y, p):
    """Eq. (9) exactly, in float64: every mask weighted by its probability."""
    h = x @ W1.T
    total = 0.0
    for mask in itertools.product([0, 1], repeat=W1.shape[0]):
        mask = np.array(mask)
        prob = np.prod(np.where(mask == 1, p, 1 - p))
        dropped = np.where(mask == 1, np.maximum(h, 0), h)
        total += prob * np.sum((dropped @ W2.T - y) ** 2)
    return total


def test_exact_penalty_equals_enumerated_expectation():
    W1, W2, x, y = one_hidden_layer_problem()
    for p in (0.5, 0.95):
        exact = enumerated_training_loss(W1, W2, x, y, p)
        closed = theory.inference_loss(W1, W2, x, y, p)
        closed += theory.exact_implicit_penalty(W1, W2, x, p)
        assert closed == pytest.approx(exact, rel=1e-5)


def test_paper_penalty_is_wrong_for_general_W2():
    # Eq. (11) replaces a sum over hidden units of ||W2[:, j]||^2 m_j^2 by
    # ||W2 m||^2; the cross terms make it 19.96 here instead of 53.44.
    W1, W2, x, y = one_hidden_layer_problem()
    p = 0.5
    exact = enumerated_training_loss(W1, W2, x, y, p)
    inference = theory.inference_loss(W1, W2, x, y, p)
    paper = theory.implicit_penalty(W1, W2, x, p)
    assert exact - inference == pytest.approx(53.44, abs=0.01)
    assert paper == pytest.approx(19.96, abs=0.01)


@pytest.mark.parametrize("case", ["orthogonal_columns", "one_hidden_unit"])
def test_paper_penalty_holds_in_special_cases(case):
    if case == "orthogonal_columns":
        W1, W2, x, y = one_hidden_layer_problem(hidden=4, outputs=6)
        q, _ = np.linalg.qr(W2)  # (6, 4) with orthonormal columns
        W2 = q * np.array([0.5, 1.0, 2.0, 3.0])  # orthogonal, unequal norms
    else:
        W1, W2, x, y = one_hidden_layer_problem(hidden=1)
    p = 0.7
    exact = enumerated_training_loss(W1, W2, x, y, p)
    inference = theory.inference_loss(W1, W2, x, y, p)
    paper = theory.implicit_penalty(W1, W2, x, p)
    assert paper > 0.1  # some hidden units are negative
    assert inference + paper == pytest.approx(exact, rel=1e-5)
    assert paper == pytest.approx(
        theory.exact_implicit_penalty(W1, W2, x, p), rel=1e-5
    )


def test_monte_carlo_through_layer_matches_exact_not_paper():
    W1, W2, x, y = one_hidden_layer_problem()
    p = 0.5
    estimate = theory.expected_training_loss(
        W1, W2, x, y, p, num_masks=20_000, seed=0
    )
    inference = theory.inference_loss(W1, W2, x, y, p)
    exact = inference + theory.exact_implicit_penalty(W1, W2, x, p)
    paper = inference + theory.implicit_penalty(W1, W2, x, p)
    # The spread of 20000 per-draw losses is about 34, so stderr is about 0.24.
    assert 0.1 < estimate.stderr < 0.5
    assert abs(estimate.value - exact) < 4 * estimate.stderr
    assert abs(estimate.value - paper) > 40 * estimate.stderr


def test_p_1_has_no_penalty():
    W1, W2, x, y = one_hidden_layer_problem()
    assert theory.implicit_penalty(W1, W2, x, 1.0) == 0.0
    assert theory.exact_implicit_penalty(W1, W2, x, 1.0) == 0.0
    estimate = theory.expected_training_loss(W1, W2, x, y, 1.0, num_masks=4)
    relu_loss = np.sum((np.maximum(x @ W1.T, 0) @ W2.T - y) ** 2)
    assert estimate.value == pytest.approx(relu_loss, rel=1e-5)
    assert estimate.stderr == 0.0


def test_inconsistent_shapes_are_rejected():
    W1, W2, x, y = one_hidden_layer_problem()
    with pytest.raises(ValueError, match="Inconsistent shapes"):
        theory.inference_loss(W1, W2.T, x, y, 0.9)
    with pytest.raises(ValueError, match="Inconsistent shapes"):
        theory.expected_training_loss(W1, W2, x, y[:3], 0.9)
    with pytest.raises(ValueError, match="rank 2"):
        theory.implicit_penalty(W1, W2, x[0], 0.9)
