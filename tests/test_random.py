"""Statistical tests of `keras_dropact.random.bernoulli`, both samplers.

Seeds are fixed, so every test is deterministic; bounds are 5 binomial
standard deviations. Both samplers are forced (on a CPU "auto" is "bytes").
The "bytes" sampler's two parts are both exercised: p = 0.95 and p = 0.6 use
dense bytes plus sparse corrections, p = 0.999 and p = 0.002 only sparse
events, p = 0.75 (a multiple of 1/256) only dense bytes. At the sizes used,
dropping the sparse part would move the p = 0.95 keep rate by 0.0031, about
15 standard deviations: the rate tests would fail.

On JAX every distinct shape (and, for "bytes", every p) compiles the
sampler's ops again when called eagerly, as these tests do; a compile is
cheap on a CPU but not on a GPU, so the tests share a few shapes.
"""

import numpy as np
import pytest

import keras
from keras import ops

from keras_dropact.random import bernoulli
from keras_dropact.random import choose_sampler
from keras_dropact.random import random_words
from tests.conftest import BACKEND

N_ROWS, N_COLS = 1024, 1025  # 1,049,600 elements; rows are odd on purpose.
SIGMAS = 5.0
SAMPLERS = ["bytes", "bits"]


def sample(p, shape=(N_ROWS, N_COLS), seed=1, sampler="bytes"):
    generator = keras.random.SeedGenerator(seed)
    return ops.convert_to_numpy(bernoulli(shape, p, generator, sampler=sampler))


def binomial_bound(p, n):
    return SIGMAS * np.sqrt(p * (1.0 - p) / n)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("p", [0.6, 0.95, 0.999, 0.75, 0.3, 0.002])
def test_rate_within_binomial_bound(p, sampler):
    mask = sample(p, sampler=sampler)
    assert mask.dtype == np.bool_
    assert mask.shape == (N_ROWS, N_COLS)
    assert abs(mask.mean() - p) < binomial_bound(p, mask.size)


# About 1e6 draws per seed, a size that is no multiple of 4 (the "bytes"
# sampler packs four elements into a random word and trims the rest).
UNALIGNED = (N_ROWS - 1, N_COLS)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("p, seeds", [(0.95, 20), (0.5 + 0.1 / 256, 10)])
def test_rate_pooled_over_seeds(p, seeds, sampler):
    # ~2e7 draws at the paper's p (5 sd: 2.4e-4) and ~1e7 where the "bytes"
    # sampler's sparse part is largest (e = 127.9/256: t = 127, r = 0.007;
    # 5 sd: 7.9e-4), where dropping the sparse rate's division by
    # 1 - t/256 would move the rate by 1.7e-3. One shape: on JAX each new
    # shape (and p) compiles the sampler's ops again (~1 s on a CPU).
    kept = 0
    for seed in range(100, 100 + seeds):
        mask = bernoulli(UNALIGNED, p, keras.random.SeedGenerator(seed), sampler=sampler)
        kept += int(ops.convert_to_numpy(ops.sum(ops.cast(mask, "int32"))))
    draws = seeds * UNALIGNED[0] * UNALIGNED[1]
    assert abs(kept / draws - p) < binomial_bound(p, draws)


def test_bytes_parts_add_up_to_the_rare_outcome_exactly():
    # The "bytes" sampler's rarer outcome (probability e = min(p, 1 - p)) is
    # a dense event of probability t/256 or an independent sparse one of
    # probability r: P = t/256 + (1 - t/256) r must be e, here to float64
    # precision, over a grid of p and around each k/256. The rate tests
    # cannot see biases below ~1e-4; the sampler promises 1e-7.
    from keras_dropact.random import _bytes_parts

    levels = np.arange(1, 256) / 256.0
    grid = [*np.linspace(0.0, 1.0, 4097)[1:-1], *levels, *(levels - 2.0**-30), *(levels + 2.0**-30),
            0.95, 0.999, 0.002, 2.0**-30]
    for p in grid:
        e = min(float(p), 1.0 - float(p))
        threshold, rate = _bytes_parts(e)
        assert threshold == int(np.floor(e * 256)) and 0 <= threshold <= 128, p
        assert 0.0 <= rate < 1.0 / (256 - threshold) <= 1.0 / 128, p
        assert abs(threshold / 256 + (1 - threshold / 256) * rate - e) <= 2.0**-53, p


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("p", [0.95, 0.6])
@pytest.mark.parametrize("lag", [1, 2, 3, 4, 5, N_COLS])
def test_pairs_are_independent(p, lag, sampler):
    # "bytes": four neighbours share one random word; lag N_COLS is the next
    # row. Non-overlapping pairs (i, i + lag) are independent Bernoulli(q**2).
    q = 1.0 - p
    dropped = ~sample(p, sampler=sampler).reshape(-1)
    starts = np.arange(dropped.size - lag)
    starts = starts[(starts // lag) % 2 == 0]  # Disjoint pairs.
    both = dropped[starts] & dropped[starts + lag]
    assert abs(both.mean() - q * q) < binomial_bound(q * q, both.size)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_fresh_mask_each_call(sampler):
    generator = keras.random.SeedGenerator(3)
    first, second = (
        ops.convert_to_numpy(bernoulli((256, 256), 0.5, generator, sampler))
        for _ in range(2)
    )
    differ = (first != second).mean()  # Independent masks: 2 p (1 - p).
    assert abs(differ - 0.5) < binomial_bound(0.5, first.size)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_examples_get_different_masks(sampler):
    mask = sample(0.5, shape=(256, 256), sampler=sampler)
    distinct_rows = {row.tobytes() for row in mask}
    assert len(distinct_rows) == 256
    agreement = (mask[1:] == mask[:-1]).mean()
    assert abs(agreement - 0.5) < binomial_bound(0.5, mask[1:].size)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("p", [0.95, 0.999])
def test_same_seed_same_masks(p, sampler):
    first = sample(p, seed=7, sampler=sampler)
    np.testing.assert_array_equal(first, sample(p, seed=7, sampler=sampler))
    assert (first != sample(p, seed=8, sampler=sampler)).any()
    from_int = ops.convert_to_numpy(bernoulli((N_ROWS, N_COLS), p, 11, sampler))
    np.testing.assert_array_equal(
        from_int,
        ops.convert_to_numpy(bernoulli((N_ROWS, N_COLS), p, 11, sampler)),
    )


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("shape", [(1,), (3, 5, 7), (2, 2)])
def test_small_and_odd_shapes(shape, sampler):
    mask = sample(0.95, shape=shape, sampler=sampler)
    assert mask.shape == shape
    assert mask.dtype == np.bool_
    if mask.size > 100:  # 105 = 1 modulo 4: the rate too, not a constant mask.
        assert abs(mask.mean() - 0.95) < binomial_bound(0.95, mask.size)


@pytest.mark.parametrize("sampler", SAMPLERS + ["auto"])
def test_certain_events(sampler):
    assert sample(1.0, shape=(5, 3), sampler=sampler).all()
    assert not sample(0.0, shape=(5, 3), sampler=sampler).any()


def test_bits_rounds_p_to_a_multiple_of_2_to_the_minus_32():
    # round(p * 2**32) is 0 below 2**-33 and 2**32 above 1 - 2**-33.
    tiny = 2.0**-34
    assert not sample(tiny, sampler="bits").any()
    assert sample(1.0 - tiny, sampler="bits").all()


def test_words_are_uniform_over_all_32_bits():
    # Each bit of a uniform 32-bit word is a fair coin, the sign bit too
    # (a bounded draw such as randint(0, 2**31) would fail it), independent
    # of the others. The 32 * 1M bits are tested at 5 sd each.
    words = ops.convert_to_numpy(random_words((N_ROWS, N_COLS), 5))
    assert words.dtype == np.int32
    bits = (words.reshape(-1, 1).view(np.uint32) >> np.arange(32, dtype=np.uint32)) & 1
    np.testing.assert_allclose(bits.mean(axis=0), 0.5, atol=binomial_bound(0.5, words.size))
    both = (bits[:, :-1] & bits[:, 1:]).mean(axis=0)  # Neighbouring bits.
    np.testing.assert_allclose(both, 0.25, atol=binomial_bound(0.25, words.size))


def test_auto_is_bytes_on_cpus():
    x = ops.convert_to_tensor(np.zeros((2, 3), "float32"))
    if keras.config.backend() == "torch" and x.device.type != "cpu":
        pytest.skip("the default device is not a CPU")
    if keras.config.backend() == "jax" and next(iter(x.devices())).platform != "cpu":
        pytest.skip("the default device is not a CPU")
    if keras.config.backend() == "tensorflow" and "CPU" not in x.device:
        pytest.skip("the default device is not a CPU")
    assert choose_sampler(x) == "bytes"


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TF device placement")
def test_auto_is_bits_for_ops_placed_on_a_gpu():
    # In a graph the requested placement decides, whether a GPU exists or not.
    import tensorflow as tf

    chosen = []

    @tf.function
    def choose(x):
        for device in ("/GPU:0", "/CPU:0"):
            with tf.device(device):
                chosen.append(choose_sampler(tf.identity(x)))
        return x

    choose.get_concrete_function(tf.TensorSpec((2,), tf.float32))
    assert chosen == ["bits", "bytes"]


@pytest.mark.skipif(BACKEND != "torch", reason="torch devices")
def test_auto_follows_the_torch_device():
    import torch

    assert choose_sampler(torch.zeros(2, device="meta")) == "bits"
    assert choose_sampler(torch.zeros(2, device="cpu")) == "bytes"


@pytest.mark.parametrize("seed", [None, 1.5, True, "7"])
def test_a_seed_must_be_a_generator_or_an_int(seed):
    with pytest.raises(ValueError, match="`seed`: expected a `keras.random.SeedGenerator` or an int"):
        bernoulli((2, 2), 0.5, seed)
    with pytest.raises(ValueError, match="`seed`"):
        random_words((2, 2), seed)


@pytest.mark.parametrize("sampler", ["byte", "Bits", None])
def test_unknown_sampler_is_rejected_naming_the_choices(sampler):
    with pytest.raises(ValueError, match=r"`sampler`.*'auto', 'bits', 'bytes'"):
        bernoulli((2, 2), 0.5, 0, sampler=sampler)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_invalid_probability(p):
    with pytest.raises(ValueError, match="Expected a probability|expected a probability"):
        bernoulli((2, 2), p, keras.random.SeedGenerator(0))


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TF graphs and XLA"
)
@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("p", [0.95, 0.999])
def test_unknown_batch_dimension_in_tf_function(jit_compile, p, sampler):
    import tensorflow as tf

    generator = keras.random.SeedGenerator(5)

    @tf.function(
        jit_compile=jit_compile,
        input_signature=[tf.TensorSpec((None, 333), tf.float32)],
    )
    def draw(x):
        return bernoulli(ops.shape(x), p, generator, sampler=sampler)

    first = draw(tf.zeros((1000, 333))).numpy()
    second = draw(tf.zeros((1000, 333))).numpy()
    assert first.shape == (1000, 333)
    assert draw(tf.zeros((3, 333))).numpy().shape == (3, 333)
    assert abs(first.mean() - p) < binomial_bound(p, first.size)
    assert (first != second).any()


@pytest.mark.skipif(BACKEND != "jax", reason="XLA HLO of jax.jit")
def test_bits_lowers_to_one_elementwise_draw_on_jax():
    # The op counts benchmarks/compile_cost.py prints, for a ResNet-sized
    # (128, 32, 32, 16) mask: "bits" compiles like jax.random.bernoulli.
    from benchmarks.compile_cost import hlo_counts
    from benchmarks.compile_cost import mask_draws

    draws = mask_draws()
    bits, bytes_, reference = (
        hlo_counts(draws[name]) for name in ("bits", "bytes", "jax.random.bernoulli")
    )
    assert bits["threefry"] == 1
    assert bits["scatter"] == bits["reduce-window"] == bits["sort"] == bits["while"] == 0
    assert bits["fusions"] <= reference["fusions"]
    assert bytes_["scatter"] == 1 and bytes_["reduce-window"] > 0  # What "bits" avoids.


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TF graphs")
def test_bits_is_one_full_range_draw_and_elementwise_on_tensorflow():
    import tensorflow as tf

    def op_types(sampler):
        generator = keras.random.SeedGenerator(0)
        draw = tf.function(lambda x: bernoulli(ops.shape(x), 0.95, generator, sampler))
        graph = draw.get_concrete_function(tf.TensorSpec((None, 64))).graph
        return [op.type for op in graph.get_operations()]

    bits, bytes_ = op_types("bits"), op_types("bytes")
    assert [t for t in bits if "RandomUniform" in t] == ["StatelessRandomUniformFullIntV2"]
    assert not {"TensorScatterUpdate", "ScatterNd", "Cumsum"} & set(bits)
    # "bytes" draws its words the same way (no bounded randint), then scatters.
    assert "StatelessRandomUniformFullIntV2" in bytes_
    assert not [t for t in bytes_ if t == "StatelessRandomUniformIntV2"]
    assert {"TensorScatterUpdate", "Cumsum"} <= set(bytes_)
