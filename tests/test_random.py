"""Statistical tests of `keras_dropact.random.bernoulli`.

Seeds are fixed, so every test is deterministic; bounds are 5 binomial
standard deviations. The sampler's two parts are both exercised: p = 0.95
and p = 0.6 use dense bytes plus sparse corrections, p = 0.999 and p = 0.002
only sparse events, p = 0.75 (a multiple of 1/256) only dense bytes. At the
sizes used, dropping the sparse part would move the p = 0.95 keep rate by
0.0031, about 15 standard deviations: the rate tests would fail.
"""

import numpy as np
import pytest

import keras
from keras import ops

from keras_dropact.random import bernoulli

N_ROWS, N_COLS = 1024, 1025  # 1,049,600 elements; rows are odd on purpose.
SIGMAS = 5.0


def sample(p, shape=(N_ROWS, N_COLS), seed=1):
    generator = keras.random.SeedGenerator(seed)
    return ops.convert_to_numpy(bernoulli(shape, p, generator))


def binomial_bound(p, n):
    return SIGMAS * np.sqrt(p * (1.0 - p) / n)


@pytest.mark.parametrize("p", [0.6, 0.95, 0.999, 0.75, 0.3, 0.002])
def test_rate_within_binomial_bound(p):
    mask = sample(p)
    assert mask.dtype == np.bool_
    assert mask.shape == (N_ROWS, N_COLS)
    assert abs(mask.mean() - p) < binomial_bound(p, mask.size)


@pytest.mark.parametrize("p", [0.95, 0.6])
@pytest.mark.parametrize("lag", [1, 2, 3, 4, 5, N_COLS])
def test_pairs_are_independent(p, lag):
    # Four neighbours share one random int32; lag N_COLS is the next row.
    # Non-overlapping pairs (i, i + lag) are independent Bernoulli(q**2).
    q = 1.0 - p
    dropped = ~sample(p).reshape(-1)
    starts = np.arange(dropped.size - lag)
    starts = starts[(starts // lag) % 2 == 0]  # Disjoint pairs.
    both = dropped[starts] & dropped[starts + lag]
    assert abs(both.mean() - q * q) < binomial_bound(q * q, both.size)


def test_fresh_mask_each_call():
    generator = keras.random.SeedGenerator(3)
    first = ops.convert_to_numpy(bernoulli((256, 256), 0.5, generator))
    second = ops.convert_to_numpy(bernoulli((256, 256), 0.5, generator))
    differ = (first != second).mean()  # Independent masks: 2 p (1 - p).
    assert abs(differ - 0.5) < binomial_bound(0.5, first.size)


def test_examples_get_different_masks():
    mask = sample(0.5, shape=(64, 4096))
    distinct_rows = {row.tobytes() for row in mask}
    assert len(distinct_rows) == 64
    agreement = (mask[1:] == mask[:-1]).mean()
    assert abs(agreement - 0.5) < binomial_bound(0.5, mask[1:].size)


@pytest.mark.parametrize("p", [0.95, 0.999])
def test_same_seed_same_masks(p):
    np.testing.assert_array_equal(sample(p, seed=7), sample(p, seed=7))
    assert (sample(p, seed=7) != sample(p, seed=8)).any()
    from_int = ops.convert_to_numpy(bernoulli((300, 301), p, 11))
    np.testing.assert_array_equal(
        from_int, ops.convert_to_numpy(bernoulli((300, 301), p, 11))
    )


@pytest.mark.parametrize("shape", [(1,), (3, 5, 7), (2, 2)])
def test_small_and_odd_shapes(shape):
    mask = sample(0.95, shape=shape)
    assert mask.shape == shape
    assert mask.dtype == np.bool_


def test_certain_events():
    assert sample(1.0, shape=(5, 3)).all()
    assert not sample(0.0, shape=(5, 3)).any()


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_invalid_probability(p):
    with pytest.raises(ValueError, match="Expected a probability|expected a probability"):
        bernoulli((2, 2), p, keras.random.SeedGenerator(0))


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TF graphs and XLA"
)
@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("p", [0.95, 0.999])
def test_unknown_batch_dimension_in_tf_function(jit_compile, p):
    import tensorflow as tf

    generator = keras.random.SeedGenerator(5)

    @tf.function(
        jit_compile=jit_compile,
        input_signature=[tf.TensorSpec((None, 333), tf.float32)],
    )
    def draw(x):
        return bernoulli(ops.shape(x), p, generator)

    first = draw(tf.zeros((1000, 333))).numpy()
    second = draw(tf.zeros((1000, 333))).numpy()
    assert first.shape == (1000, 333)
    assert draw(tf.zeros((3, 333))).numpy().shape == (3, 333)
    assert abs(first.mean() - p) < binomial_bound(p, first.size)
    assert (first != second).any()
