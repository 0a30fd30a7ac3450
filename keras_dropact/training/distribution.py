"""Choosing a `tf.distribute` strategy from a name (`--strategy`)."""

import json
import os

STRATEGIES = ("auto", "none", "mirrored", "multiworker")


def num_workers_in_tf_config():
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def resolve(name):
    """The strategy called `name`.

    auto: MultiWorkerMirroredStrategy when TF_CONFIG names several workers,
    MirroredStrategy when several GPUs are visible, else the default
    (single-device) strategy.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}. Valid strategies: {', '.join(STRATEGIES)}."
        )
    if name == "auto":
        if num_workers_in_tf_config() > 1:
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "none"
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
