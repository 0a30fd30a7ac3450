"""The paper's two properties of Drop-Activation, in closed form and simulated.

Section 5 of Liang, Khoo & Yang (arXiv 1811.05850) states two properties of
Drop-Activation with ReLU, keeping the nonlinearity with probability `p`:

* Property 5.2 (eq. 13-15): for x ~ N(0, I_d) and any weights w, the variance
  of X = w . DropAct(x) shrinks only slightly from training to inference, by
  the shift ratio of eq. (15). `shift_ratio` is that closed form and
  `simulated_shift_ratio` measures it through the real `DropActivation` layer.

* Property 5.1 (eq. 9-11): for a one-hidden-layer network W2 relu(W1 x), the
  training loss averaged over the masks (eq. 9) equals the inference loss
  (first term of eq. 10) plus a penalty. `expected_training_loss` estimates
  eq. (9) through the real layer, `inference_loss` is the first term of eq.
  (10), `implicit_penalty` is the penalty as the paper prints it (eq. 11) and
  `exact_implicit_penalty` the penalty the expectation really adds.

  The two penalties differ. The mask variance contributes one term per hidden
  unit (the masks are independent), so the exact penalty is a *Frobenius*
  norm, (1-p)/p ||W2 diag(W1 x - r_p(W1 x))||_F^2, whereas eq. (11) is the
  squared norm of the *sum* of those columns, (1-p)/p ||W2 (W1 x -
  r_p(W1 x))||^2. The paper's proof (Appendix 7) is right up to
  p(1-p) tr{W2 diag(v)(I - D)^2 diag(v) W2^T} (v = W1 x, D the 0-1 diagonal
  of v > 0), which is p(1-p) ||W2 diag((I - D) v)||_F^2, and then writes it
  as p(1-p) ||W2 (I - D) v||^2. Eq. (11) therefore holds when W2 has orthogonal columns
  (W2^T W2 diagonal), when at most one hidden unit of each sample is
  negative (e.g. one hidden unit), and on average over weights W2 with
  independent zero-mean entries, but not for a given W2 in general; the
  tests in `tests/test_theory.py` show both cases numerically.

Matrices follow the paper: `W1` is (hidden, inputs), `W2` is (outputs,
hidden); samples are rows, `x` is (n, inputs) and `y` is (n, outputs). The
computations use `keras.ops` in float32, so they run on every Keras backend.
"""

import collections
import math
import numbers

import keras
from keras import ops

from keras_dropact.layers import DropActivation
from keras_dropact.layers.drop_activation import check_keep_probability

MonteCarloEstimate = collections.namedtuple(
    "MonteCarloEstimate", ["value", "stderr"]
)
MonteCarloEstimate.__doc__ = """A Monte-Carlo estimate and its standard error.

Attributes:
    value: the estimate, a Python float.
    stderr: its standard error estimated from independent repetitions, a
        Python float; the estimate is within 4 `stderr` of the true value
        except with probability about 1e-4.
"""

# Independent batches that `simulated_shift_ratio` splits its samples into to
# estimate its standard error (batch means).
_NUM_BATCHES = 20


def shift_ratio(p):
    """Var(X_test) / Var(X_train) of Drop-Activation with ReLU (eq. 15).

    Property 5.2: for x ~ N(0, I_d) and any weights w, X_train = w . DropAct(x)
    with random masks (eq. 13) and X_test = w . r_p(x) (eq. 14) have

        Var(X_train) = |w|^2 (1 - p/2 - p^2 / (2 pi)),
        Var(X_test)  = |w|^2 ((1/2 - 1/(2 pi)) p^2 - p + 1),

    so their ratio does not depend on w or d:

        shift ratio = ((1/2 - 1/(2 pi)) p^2 - p + 1) / (1 - p/2 - p^2/(2 pi)).

    It is 0.9377 at p = 0.95, tends to 1 as p -> 0, equals 1 at p = 1, and
    reaches its minimum 0.8126 at p = (2 pi - sqrt(2 pi (pi - 1))) / (pi + 1)
    = 0.6314; the paper's "range [0.8, 1]" is right (the exact range over
    (0, 1] is [0.8126, 1]).

    Args:
        p: the probability of keeping the nonlinearity, in (0, 1].

    Returns:
        The shift ratio, a Python float.
    """
    p = check_keep_probability(p)
    test_variance = (0.5 - 0.5 / math.pi) * p * p - p + 1.0
    train_variance = 1.0 - 0.5 * p - p * p / (2.0 * math.pi)
    return test_variance / train_variance


def simulated_shift_ratio(p, d=64, num_samples=100_000, seed=0):
    """Monte-Carlo shift ratio through the real `DropActivation` layer.

    Draws `num_samples` inputs x ~ N(0, I_d) and one weight vector w ~ N(0,
    I_d), passes x through `DropActivation(p)` in training mode (random masks,
    eq. 13) and in inference mode (eq. 14), and returns the ratio of the
    sample variances of X = w . DropAct(x): an estimate of `shift_ratio(p)`.

    Args:
        p: the probability of keeping the nonlinearity, in (0, 1].
        d: the number of inputs summed by w (the paper's d), an int >= 1.
        num_samples: the number of draws of x, an int >= 2 * 20; the standard
            error is estimated from 20 independent batches of them.
        seed: an int that fixes x, w and the masks.

    Returns:
        A `MonteCarloEstimate(value, stderr)`. The relative standard error
        is at most about 2 / sqrt(num_samples): each sample variance of the
        near-Gaussian X has sqrt(2 / num_samples), and the two are
        positively correlated (same x).
    """
    p = check_keep_probability(p)
    _check_int("d", d, minimum=1)
    _check_int("num_samples", num_samples, minimum=2 * _NUM_BATCHES)
    _check_int("seed", seed, minimum=0)
    generator = keras.random.SeedGenerator(seed)
    x = keras.random.normal((num_samples, d), seed=generator)
    w = keras.random.normal((d, 1), seed=generator)
    layer = DropActivation(p, seed=seed + 1)
    x_train = ops.matmul(layer(x, training=True), w)[:, 0]
    x_test = ops.matmul(layer(x, training=False), w)[:, 0]
    value = ops.var(x_test) / ops.var(x_train)

    per_batch = num_samples // _NUM_BATCHES
    used = per_batch * _NUM_BATCHES
    batch_test = ops.reshape(x_test[:used], (_NUM_BATCHES, per_batch))
    batch_train = ops.reshape(x_train[:used], (_NUM_BATCHES, per_batch))
    batch_ratios = ops.var(batch_test, axis=1) / ops.var(batch_train, axis=1)
    # The overall ratio averages the batches: its error is the batch spread
    # divided by sqrt(batches).
    stderr = _sample_std(batch_ratios) / math.sqrt(_NUM_BATCHES)
    return MonteCarloEstimate(_to_float(value), _to_float(stderr))


def inference_loss(W1, W2, x, y, p):
    """The inference-time squared loss, the first term of eq. (10).

        sum_i ||W2 r_p(W1 x_i) - y_i||^2,

    where r_p is the leaky ReLU with slope 1 - p, the network of eq. (8).

    Args:
        W1: first-layer weights, shape (hidden, inputs).
        W2: second-layer weights, shape (outputs, hidden).
        x: inputs, shape (n, inputs).
        y: targets, shape (n, outputs).
        p: the probability of keeping the ReLU, in (0, 1].

    Returns:
        The loss summed over the n samples, a Python float.
    """
    p, W2, hidden, y = _network(W1, W2, x, p, y)
    outputs = ops.matmul(_leaky(hidden, p), ops.transpose(W2))
    return _to_float(ops.sum(ops.square(outputs - y)))


def implicit_penalty(W1, W2, x, p):
    """The penalty of Property 5.1 as printed in the paper (eq. 11).

        (1 - p) / p * sum_i ||W2 W1 x_i - W2 r_p(W1 x_i)||^2.

    This is the *paper's* formula. It equals the penalty that averaging over
    the masks really adds (`exact_implicit_penalty`) only when the columns
    of W2 are orthogonal or at most one hidden unit per sample is negative;
    otherwise it is off by the cross terms (1-p)/p sum_{j != k} (W2^T W2)_jk
    m_j m_k with m = W1 x - r_p(W1 x), which have either sign (see the module
    docstring).

    Args:
        W1: first-layer weights, shape (hidden, inputs).
        W2: second-layer weights, shape (outputs, hidden).
        x: inputs, shape (n, inputs).
        p: the probability of keeping the ReLU, in (0, 1].

    Returns:
        The penalty summed over the n samples, a Python float.
    """
    p, W2, hidden, _ = _network(W1, W2, x, p)
    gap = ops.matmul(hidden - _leaky(hidden, p), ops.transpose(W2))
    return _to_float((1.0 - p) / p * ops.sum(ops.square(gap)))


def exact_implicit_penalty(W1, W2, x, p):
    """The penalty that averaging the loss over the masks really adds.

    The masks P_j ~ Bernoulli(p) of the hidden units are independent, so the
    variance of the training output W2 (I - P + P r)(h), h = W1 x, is a sum
    of one term per hidden unit j, with Var(h_j - P_j (h_j - r(h_j))) =
    p (1 - p) (h_j - r(h_j))^2 and h - r_p(h) = p (h - r(h)):

        E_P ||W2 (I - P + P r)(h) - y||^2
            = ||W2 r_p(h) - y||^2
              + p (1-p) sum_j ||W2[:, j]||^2 (h_j - r(h_j))^2
            = ||W2 r_p(h) - y||^2 + (1-p)/p ||W2 diag(h - r_p(h))||_F^2.

    This is eq. (11) with the vector norm replaced by the Frobenius norm of
    the matrix whose columns are W2[:, j] (h_j - r_p(h_j)); the two agree
    when W2 has orthogonal columns. Like dropout's penalty (a ridge weighted
    by the data), it is a weighted l2 penalty on the negative
    pre-activations, each weighted by the squared norm of its outgoing
    weights.

    Args:
        W1: first-layer weights, shape (hidden, inputs).
        W2: second-layer weights, shape (outputs, hidden).
        x: inputs, shape (n, inputs).
        p: the probability of keeping the ReLU, in (0, 1].

    Returns:
        The penalty summed over the n samples, a Python float.
    """
    p, W2, hidden, _ = _network(W1, W2, x, p)
    column_norms = ops.sum(ops.square(W2), axis=0)  # ||W2[:, j]||^2
    gap = ops.square(hidden - _leaky(hidden, p))
    return _to_float((1.0 - p) / p * ops.sum(gap * column_norms))


def expected_training_loss(W1, W2, x, y, p, num_masks=1000, seed=0):
    """Monte-Carlo estimate of the mask-averaged training loss (eq. 9).

        E_P sum_i ||W2 (I - P + P r)(W1 x_i) - y_i||^2,

    averaged over `num_masks` independent draws of the masks made by the
    real `DropActivation(p)` layer in training mode (eq. 7).

    Args:
        W1: first-layer weights, shape (hidden, inputs).
        W2: second-layer weights, shape (outputs, hidden).
        x: inputs, shape (n, inputs).
        y: targets, shape (n, outputs).
        p: the probability of keeping the ReLU, in (0, 1].
        num_masks: the number of mask draws, an int >= 2.
        seed: an int that fixes the masks.

    Returns:
        A `MonteCarloEstimate(value, stderr)` of the loss summed over the n
        samples; `stderr` is the spread of the per-draw losses divided by
        sqrt(num_masks).
    """
    _check_int("num_masks", num_masks, minimum=2)
    _check_int("seed", seed, minimum=0)
    p, W2, hidden, y = _network(W1, W2, x, p, y)
    hidden = ops.repeat(hidden[None], num_masks, axis=0)
    dropped = DropActivation(p, seed=seed)(hidden, training=True)
    outputs = ops.matmul(dropped, ops.transpose(W2))
    per_draw = ops.sum(ops.square(outputs - y[None]), axis=(1, 2))
    stderr = _sample_std(per_draw) / math.sqrt(num_masks)
    return MonteCarloEstimate(_to_float(ops.mean(per_draw)), _to_float(stderr))


def _leaky(hidden, p):
    """r_p, the leaky ReLU with slope 1 - p (eq. 8)."""
    return ops.leaky_relu(hidden, negative_slope=1.0 - p)


def _sample_std(values):
    """The sample standard deviation (n - 1 in the denominator)."""
    n = ops.shape(values)[0]
    return ops.sqrt(ops.var(values) * n / (n - 1))


def _to_float(value):
    return float(ops.convert_to_numpy(value))


def _check_int(name, value, minimum):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"Invalid value received for argument `{name}`. Expected an int "
            f">= {minimum}. Received: {name}={value!r}"
        )


def _network(W1, W2, x, p, y=None):
    """Checks the arguments of the one-hidden-layer net of Section 5.1.

    Returns `(p, W2, hidden, y)` with hidden = x W1^T (the pre-activations
    W1 x of every sample) and the matrices as float32 tensors.
    """
    p = check_keep_probability(p)
    W1, W2, x, y = _check_network(W1, W2, x, y)
    return p, W2, ops.matmul(x, ops.transpose(W1)), y


def _check_network(W1, W2, x, y=None):
    """Converts the arguments to float32 tensors and checks their shapes."""
    arrays = {"W1": W1, "W2": W2, "x": x}
    if y is not None:
        arrays["y"] = y
    tensors = {}
    for name, array in arrays.items():
        tensor = ops.convert_to_tensor(array, dtype="float32")
        if len(ops.shape(tensor)) != 2:
            raise ValueError(
                f"Invalid value received for argument `{name}`: expected a "
                f"matrix (rank 2). Received shape {ops.shape(tensor)}."
            )
        tensors[name] = tensor
    shapes = {name: tuple(ops.shape(t)) for name, t in tensors.items()}
    hidden, inputs = shapes["W1"]
    consistent = shapes["W2"][1] == hidden and shapes["x"][1] == inputs
    if y is not None:
        consistent &= shapes["y"] == (shapes["x"][0], shapes["W2"][0])
    if not consistent:
        raise ValueError(
            "Inconsistent shapes: expected W1 (hidden, inputs), W2 (outputs, "
            "hidden), x (n, inputs), y (n, outputs). Received "
            + ", ".join(f"{name} {shape}" for name, shape in shapes.items())
            + "."
        )
    return tensors["W1"], tensors["W2"], tensors["x"], tensors.get("y")
