"""Random-number plumbing shared by the stochastic layers.

Keras' `SeedGenerator` keeps one seed state per layer. Under
`tf.distribute.MirroredStrategy` (and `MultiWorkerMirroredStrategy`) that state
is a mirrored variable, so every replica reads the *same* seed and draws the
*same* mask: the replicas then train on correlated noise, which silently
shrinks the regularisation by the number of replicas. `ReplicaSeedGenerator`
folds the global replica id into each drawn seed so that each replica (on
every worker) draws its own, still reproducible, stream.
"""

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


def bernoulli(shape, p, seed):
    """A boolean tensor of `shape` whose elements are True with probability p.

    Every element is drawn independently (the paper's P_i ~ B(p), eq. 3).

    Args:
        shape: the output shape (may hold symbolic dimensions).
        p: the probability of True, a Python float in (0, 1).
        seed: a `SeedGenerator` (or an int) as for `keras.random`.
    """
    return ops.less(keras.random.uniform(shape, seed=seed), p)
