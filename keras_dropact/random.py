"""Random-number plumbing shared by the stochastic layers.

Keras' `SeedGenerator` keeps one seed state per layer. Under
`tf.distribute.MirroredStrategy` (and `MultiWorkerMirroredStrategy`) that state
is a mirrored variable, so every replica reads the *same* seed and draws the
*same* mask: the replicas then train on correlated noise, which silently
shrinks the regularisation by the number of replicas. `ReplicaSeedGenerator`
folds the global replica id into each drawn seed so that each replica (on
every worker) draws its own, still reproducible, stream.
"""

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


# Dense part of `bernoulli`: one random byte per element (four per int32).
_LEVELS = 256
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
# Sparse part: draw this many standard deviations (plus a constant) more
# geometric gaps than the expected number of events, so that running out of
# gaps before the end of the tensor has probability below exp(-50) (Chernoff).
_GAP_MARGIN_SDS = 10.0
_GAP_MARGIN_CONST = 40.0
# Odd 32-bit constant deriving the sparse stream's seed from an int seed.
_SPARSE_SEED_MULTIPLIER = 0x2545F491


def bernoulli(shape, p, seed):
    """A boolean tensor of `shape` whose elements are True with probability p.

    Every element is drawn independently (the paper's P_i ~ B(p), eq. 3).

    Why not `uniform(shape) < p`: a float uniform spends 32 random bits on an
    event whose entropy is 0.29 bits (p = 0.95), and generating random
    numbers is what dominates Drop-Activation's cost on CPUs. This sampler
    draws the rarer outcome (probability e = min(p, 1 - p) <= 1/2) as the
    union of two independent events, which is exact:

    * dense: one random *byte* b per element (four elements per random
      int32), event `b < t` with t = floor(256 e), probability t/256;
    * sparse: Bernoulli(r) events with r = (e - t/256) / (1 - t/256) < 1/128,
      placed by geometric gaps between consecutive events (a Bernoulli
      process), so only about N r + 10 sqrt(N r) uniforms are drawn, then
      written into the byte array with one scatter.

    P(dense or sparse) = t/256 + (1 - t/256) r = e. Deviations from exact
    Bernoulli(p) come only from float32 arithmetic: the byte draw is uniform
    up to 2**-32 (int32 range of 2**32 - 1 values), the geometric gaps use
    float32 uniforms (CDF error <= 2**-23, relative error of r ~1e-6), and
    the gaps run out before the end of the tensor with probability
    < exp(-50). The bias of the keep rate is below 1e-7 absolute for every p,
    as good as `uniform < p` (which also quantises p to 2**-23 or 2**-24).
    For p = 0.95 this costs about a quarter of the random bits of
    `uniform < p`; p in {k/256} needs no scatter at all.

    Args:
        shape: the output shape (may hold symbolic dimensions). The number of
            elements must stay below 2**30 (int32 positions).
        p: the probability of True, a Python float in [0, 1].
        seed: a `SeedGenerator` (two seeds are drawn from it per call) or an
            int as for `keras.random`.
    """
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(
            f"Invalid value received for argument `p`: expected a probability "
            f"in [0, 1]. Received: p={p!r}"
        )
    if p in (0.0, 1.0):
        return ops.full(shape, p == 1.0, dtype="bool")
    n = _num_elements(shape)
    events = _rare_events(n, min(p, 1.0 - p), seed)
    if p > 0.5:
        events = ops.logical_not(events)
    return ops.reshape(events, shape)


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
    threshold = int(e * _LEVELS)  # floor: t/256 <= e.
    rest = (e - threshold / _LEVELS) / (1.0 - threshold / _LEVELS)
    num_words = (n + 3) // 4
    if threshold > 0:
        words = keras.random.randint(
            (num_words, 1), _INT32_MIN, _INT32_MAX, dtype="int32",
            seed=dense_seed,
        )
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
