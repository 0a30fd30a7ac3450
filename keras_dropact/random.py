"""Random-number plumbing shared by the stochastic layers.

Keras' `SeedGenerator` keeps one seed state per layer. Under
`tf.distribute.MirroredStrategy` (and `MultiWorkerMirroredStrategy`) that state
is a mirrored variable, so every replica reads the *same* seed and draws the
*same* mask: the replicas then train on correlated noise, which silently
shrinks the regularisation by the number of replicas. `ReplicaSeedGenerator`
folds the global replica id into each drawn seed so that each replica (on
every worker) draws its own, still reproducible, stream.

`bernoulli` draws Drop-Activation's masks with one of two exact samplers:
"bytes" (a quarter of the random bits, for CPUs, where generating them is
the layer's main cost) and "bits" (one elementwise 32-bit draw per element,
for GPUs and TPUs, where the other's scatter and cumsum cost compile time);
"auto" picks per backend and device (`choose_sampler`). Both take their
random bits from `random_words`, one full-range draw per 32-bit word.
"""

import contextlib
import math

import keras
from keras import ops

# An odd 31-bit constant (the golden-ratio hash multiplier) that spreads
# consecutive replica ids over the whole seed range.
_REPLICA_SEED_STRIDE = 0x9E3779B1 >> 1


def replica_id_in_sync_group():
    """The global id of the replica running this code, 0 outside strategies.

    Only TensorFlow has replica contexts; JAX and PyTorch run replicas as
    separate programs (or shard arrays) and never share a seed this way.
    Returns a Python int or an integer scalar tensor.
    """
    if keras.backend.backend() != "tensorflow":
        return 0
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None:  # Cross-replica context: no single replica.
        return 0
    return context.replica_id_in_sync_group


@keras.saving.register_keras_serializable(package="keras_dropact")
class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A `keras.random.SeedGenerator` whose seeds differ between replicas.

    Use it exactly like `SeedGenerator`; outside a distribution strategy
    (or with one replica) it returns the same seeds as `SeedGenerator`.
    """

    def next(self, ordered=True):
        seed = super().next(ordered=ordered)
        replica_id = replica_id_in_sync_group()
        if isinstance(replica_id, int) and replica_id == 0:
            return seed
        offset = ops.cast(replica_id, seed.dtype) * _REPLICA_SEED_STRIDE
        return seed + ops.stack([offset, ops.zeros_like(offset)])


# The samplers of `bernoulli`; "auto" picks one per backend and device.
SAMPLERS = ("auto", "bits", "bytes")

_INT32_MIN = -(2**31)
_WORD_LEVELS = 2**32
# Dense part of the "bytes" sampler: one random byte per element (four per
# 32-bit word).
_LEVELS = 256
# Sparse part: draw this many standard deviations (plus a constant) more
# geometric gaps than the expected number of events, so that running out of
# gaps before the end of the tensor has probability below exp(-50) (Chernoff).
_GAP_MARGIN_SDS = 10.0
_GAP_MARGIN_CONST = 40.0
# Odd 32-bit constant deriving the sparse stream's seed from an int seed.
_SPARSE_SEED_MULTIPLIER = 0x2545F491


def check_sampler(sampler):
    """Returns `sampler` if it names one of `SAMPLERS`, else a one-line error."""
    if sampler not in SAMPLERS:
        raise ValueError(
            f"Invalid value received for argument `sampler`: {sampler!r}. "
            f"Expected one of {', '.join(map(repr, SAMPLERS))}."
        )
    return sampler


def choose_sampler(like=None):
    """The sampler that `"auto"` stands for where `like` is computed.

    `"bytes"` on CPUs, where generating random numbers dominates the cost of
    a mask and a quarter of the random bits pays for the sparse correction;
    `"bits"` on GPUs and TPUs, where random bits are cheap elementwise work
    fused into the activation's kernel and the sparse correction's scatter
    and cumsum cost compile time and kernel launches instead.

    * JAX: the platform of `like` if it is a concrete array, else (inside
      `jax.jit`) the default backend;
    * TensorFlow: the device `like` is placed on if it has one, else whether
      a GPU or TPU is visible (TensorFlow then places ops there);
    * PyTorch: the device of `like`, else Keras' default device;
    * other backends: `"bytes"`.

    Args:
        like: the tensor the mask is for (optional).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        if isinstance(like, jax.Array) and not isinstance(like, jax.core.Tracer):
            platform = next(iter(like.devices())).platform
        else:
            platform = jax.default_backend()
        return "bytes" if platform == "cpu" else "bits"
    if backend == "tensorflow":
        import tensorflow as tf

        device = getattr(like, "device", None) or ""
        if device:
            return "bytes" if "CPU" in device.upper() else "bits"
        accelerators = tf.config.list_logical_devices(
            "GPU"
        ) + tf.config.list_logical_devices("TPU")
        return "bits" if accelerators else "bytes"
    if backend == "torch":
        return "bytes" if _torch_device(like).type == "cpu" else "bits"
    return "bytes"


def random_words(shape, seed):
    """An int32 tensor of independent words, each uniform over all 2**32 values.

    The one source of random bits of both samplers: one elementwise draw, no
    bounded-range arithmetic (so no modulo bias and no excluded value).

    * JAX: `jax.random.bits`, one threefry pass (Keras' `randint` draws two
      32-bit values per word);
    * TensorFlow: a full-range stateless integer draw (`minval=None`), as
      XLA compiles it;
    * other backends: `keras.random.randint` over the whole int32 range.

    Args:
        shape: the output shape (may hold symbolic dimensions on TensorFlow).
        seed: a `SeedGenerator` (one seed is drawn from it per call) or an int
            as for `keras.random`.
    """
    _check_seed(seed)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        key = _seed_pair(seed, "uint32")
        bits = jax.random.bits(key, tuple(shape), dtype=jnp.uint32)
        return jax.lax.bitcast_convert_type(bits, jnp.int32)
    if backend == "tensorflow":
        import tensorflow as tf

        # As Keras' TensorFlow random ops do: int32 seeds, which XLA needs.
        pair = tf.math.floormod(_seed_pair(seed, "int64"), 2**31 - 2)
        return tf.random.stateless_uniform(
            shape, tf.cast(pair, "int32"), minval=None, maxval=None, dtype="int32"
        )
    return keras.random.randint(shape, _INT32_MIN, 2**31, dtype="int32", seed=seed)


def _check_seed(seed):
    if isinstance(seed, keras.random.SeedGenerator) or (
        isinstance(seed, int) and not isinstance(seed, bool)
    ):
        return
    raise ValueError(
        "Invalid value received for argument `seed`: expected a "
        f"`keras.random.SeedGenerator` or an int. Received: seed={seed!r}"
    )


def _seed_pair(seed, dtype):
    """The `[seed, counter]` pair Keras draws for `keras.random` ops."""
    if isinstance(seed, keras.random.SeedGenerator):
        return ops.cast(seed.next(), dtype)
    return ops.convert_to_tensor([seed % 2**32, 0], dtype=dtype)


def bernoulli(shape, p, seed, sampler="auto", like=None):
    """A boolean tensor of `shape` whose elements are True with probability p.

    Every element is drawn independently (the paper's P_i ~ B(p), eq. 3),
    by one of two exact samplers:

    * `"bits"`: one random 32-bit word U per element, True where
      U < round(p * 2**32) (unsigned). Purely elementwise (no scatter,
      cumsum, sort or data-dependent shape): on an accelerator it fuses into
      the consumer's kernel and compiles like `uniform < p`. The rate is p
      up to the rounding of p to a multiple of 2**-32: a bias below 2**-33
      (1.2e-10), better than float32 `uniform < p` (2**-24 or 2**-23).
    * `"bytes"`: a quarter of the random bits, for CPUs, where generating
      them dominates the layer's cost. The rarer outcome (probability
      e = min(p, 1 - p) <= 1/2) is the union of two independent events:
      - dense: one random *byte* b per element (four elements per random
        word), event `b < t` with t = floor(256 e), probability t/256;
      - sparse: Bernoulli(r) events with r = (e - t/256) / (1 - t/256) <
        1/128, placed by geometric gaps between consecutive events (a
        Bernoulli process), so only about N r + 10 sqrt(N r) uniforms are
        drawn, then written into the byte array with one scatter.
      P(dense or sparse) = t/256 + (1 - t/256) r = e. Deviations from exact
      Bernoulli(p) come only from float32 arithmetic in the gaps (CDF error
      <= 2**-23, relative error of r ~1e-6) and from running out of gaps
      before the end of the tensor (probability < exp(-50)): a keep-rate
      bias below 1e-7 for every p. p in {k/256} needs no scatter at all.
    * `"auto"`: `choose_sampler(like)`.

    Both draw their words with `random_words`. On PyTorch the mask is made
    on the device of `like` (Keras' default device without it).

    Args:
        shape: the output shape (may hold symbolic dimensions). The number of
            elements must stay below 2**30 for `"bytes"` (int32 positions).
        p: the probability of True, a Python float in [0, 1].
        seed: a `SeedGenerator` (one seed is drawn from it per call by
            `"bits"`, two by `"bytes"`) or an int as for `keras.random`.
        sampler: one of `SAMPLERS`.
        like: the tensor the mask is for: chooses the `"auto"` sampler and,
            on PyTorch, the device.
    """
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(
            f"Invalid value received for argument `p`: expected a probability "
            f"in [0, 1]. Received: p={p!r}"
        )
    _check_seed(seed)
    if check_sampler(sampler) == "auto":
        sampler = choose_sampler(like)
    with device_of(like):
        return _bernoulli(shape, p, seed, sampler)


def device_of(like):
    """A context in which Keras makes its tensors on the device of `like`.

    On PyTorch Keras makes new tensors (random ones included) on its default
    device and moves its ops' inputs there, which a tensor (a test's, a
    user's) need not be on; in this context it uses `like`'s device
    instead (a seed generator's state may stay elsewhere: Keras copies it).
    On the other backends, or without `like`, it changes nothing.
    """
    device = getattr(like, "device", None)
    if device is None or keras.backend.backend() != "torch":
        return contextlib.nullcontext()
    return keras.device(str(device))


def _bernoulli(shape, p, seed, sampler):
    if p in (0.0, 1.0):
        return ops.full(shape, p == 1.0, dtype="bool")
    if sampler == "bits":
        return _bits_below(shape, p, seed)
    n = _num_elements(shape)
    events = _rare_events(n, min(p, 1.0 - p), seed)
    if p > 0.5:
        events = ops.logical_not(events)
    return ops.reshape(events, shape)


def _bits_below(shape, p, seed):
    """True where a random word is below round(p * 2**32), as unsigned ints.

    The words are signed: U < T unsigned is S < T - 2**31 for S = U - 2**31.
    """
    threshold = round(p * _WORD_LEVELS)
    if threshold in (0, _WORD_LEVELS):  # p within 2**-33 of 0 or 1.
        return ops.full(shape, threshold > 0, dtype="bool")
    words = random_words(shape, seed)
    return ops.less(words, threshold + _INT32_MIN)


def _torch_device(like):
    """The torch device of `like`, else Keras' default device."""
    if like is not None:
        return like.device
    import torch
    from keras.src.backend.torch.core import get_device

    return torch.device(get_device())


def _num_elements(shape):
    """The product of `shape`: a Python int if static, else a scalar tensor."""
    n = 1
    for dim in shape:
        n = n * dim
    return n


def _seeds(seed):
    """Two independent seeds (dense, sparse) from a `SeedGenerator` or int."""
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed, (seed * _SPARSE_SEED_MULTIPLIER + 1) % 2**32
    return seed, seed  # A SeedGenerator gives a new seed at each draw.


def _rare_events(n, e, seed):
    """A flat boolean tensor of n independent Bernoulli(e) draws, e <= 1/2."""
    dense_seed, sparse_seed = _seeds(seed)
    threshold, rest = _bytes_parts(e)
    num_words = (n + 3) // 4
    if threshold > 0:
        words = random_words((num_words, 1), dense_seed)
        levels = ops.reshape(ops.view(words, "uint8"), (-1,))
    else:  # e < 1/256: the dense part would never fire; all events sparse.
        levels = ops.full((num_words * 4,), _LEVELS - 1, dtype="uint8")
    if rest > 0.0:
        # Sparse events are written as level 0, below any threshold >= 1.
        indices, values = _bernoulli_process(n, rest, levels[0], sparse_seed)
        levels = ops.scatter_update(levels, indices, values)
    if not _divisible_by_4(n):
        levels = levels[:n]
    # A uint8 threshold: a Python int would promote the levels to int32.
    return ops.less(levels, ops.full((), max(threshold, 1), dtype="uint8"))


def _bytes_parts(e):
    """(t, r): the "bytes" sampler's dense threshold and sparse rate for e <= 1/2.

    t = floor(256 e), so the dense event `byte < t` has probability
    t/256 <= e; r = (e - t/256) / (1 - t/256) in [0, 1/128), so that the
    union of the two independent events has probability
    t/256 + (1 - t/256) r = e exactly (up to float64 rounding).
    """
    threshold = int(e * _LEVELS)  # floor: t/256 <= e.
    return threshold, (e - threshold / _LEVELS) / (1.0 - threshold / _LEVELS)


def _divisible_by_4(n):
    return isinstance(n, int) and n % 4 == 0


def _bernoulli_process(n, r, first_level, seed):
    """Scatter indices and values marking independent Bernoulli(r) events.

    The gaps between consecutive events of a Bernoulli process are
    geometric: G = floor(log(u) / log(1 - r)) + 1 for u uniform in (0, 1].
    Returns `(indices, values)` for `ops.scatter_update`: (index, 0) for each
    event in [0, n); the unused tail of the draw repeats the last event, or,
    without any event, rewrites index 0 with its own level `first_level`.
    """
    if isinstance(n, int):
        mean = n * r
        count = int(
            math.ceil(mean + _GAP_MARGIN_SDS * math.sqrt(mean) + _GAP_MARGIN_CONST)
        )
        n_float = float(n)
    else:
        n_float = ops.cast(n, "float32")
        mean = n_float * r
        count = ops.cast(
            ops.ceil(mean + _GAP_MARGIN_SDS * ops.sqrt(mean) + _GAP_MARGIN_CONST),
            "int32",
        )
    u = 1.0 - keras.random.uniform((count,), dtype="float32", seed=seed)
    gaps = ops.floor(ops.log(u) * (1.0 / math.log1p(-r))) + 1.0
    # A gap longer than n reaches past the end anyway; capping it keeps the
    # int32 sums below 2**31 up to the guard below.
    gaps = ops.minimum(gaps, n_float + 1.0)
    positions = ops.cumsum(ops.cast(gaps, "int32")) - 1
    # The float sums are approximate but cannot overflow: they tell which
    # int32 sums are exact (far below 2**31), then those below n are events.
    valid = ops.logical_and(
        ops.less(ops.cumsum(gaps), 1.5 * n_float + 1.0), ops.less(positions, n)
    )
    last = ops.max(ops.where(valid, positions, -1))
    has_event = ops.greater_equal(last, 0)
    indices = ops.where(valid, positions, ops.maximum(last, 0))
    pad_value = ops.where(has_event, 0, ops.cast(first_level, "int32"))
    values = ops.cast(ops.where(valid, 0, pad_value), "uint8")
    return ops.expand_dims(indices, -1), values
