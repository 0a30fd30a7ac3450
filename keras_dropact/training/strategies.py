"""The `--strategy` names and the backends a run trains on, and `make`: a
`Runtime` for them.

A run learns here which Keras backend is loaded (as Keras picks its
trainer once, in `keras/src/models/model.py`): `make(strategy)` returns
the runtime of that backend, `check_backend` refuses another one than the
run's. `make` is the only importer of the two runtimes (`tf_runtime`,
`jax_runtime`), which import only `runtime.Runtime`: no module imports its
own importer. See docs/guides/distributed.md.
"""

import keras

# Every --strategy, and the backend it needs (None: either).
STRATEGIES = {
    "auto": None,
    "none": None,
    "mirrored": "tensorflow",
    "multiworker": "tensorflow",
    "data-parallel": "jax",
}
_BACKENDS = {
    "tensorflow": {"label": "TensorFlow", "kind": "a tf.distribute strategy", "note": ""},
    "jax": {
        "label": "JAX",
        "kind": "keras.distribution.DataParallel",
        "note": " (keras.distribution.DataParallel)",
    },
}
# The Keras backends a run trains on (--backend, `TrainConfig.backend`).
BACKENDS = tuple(_BACKENDS)


def _check_strategy(name, backend):
    """ValueError unless `--strategy name` exists and runs on `backend`."""
    if name not in STRATEGIES:
        raise ValueError(
            f"Unknown strategy {name!r}. Valid strategies: {', '.join(STRATEGIES)}."
        )
    if backend not in _BACKENDS:
        raise ValueError(
            f"dropact train runs on the {' and '.join(_BACKENDS)} backends, not "
            f"{backend!r}: set KERAS_BACKEND=jax or KERAS_BACKEND=tensorflow "
            "(or pass --backend)."
        )
    needed = STRATEGIES[name]
    if needed not in (None, backend):
        here = _BACKENDS[backend]
        alternatives = " or ".join(n for n, wants in STRATEGIES.items() if wants == backend)
        raise ValueError(
            f"--strategy {name} is {_BACKENDS[needed]['kind']} and needs the "
            f"{_BACKENDS[needed]['label']} backend (KERAS_BACKEND={needed} or --backend "
            f"{needed}). On {here['label']} use --strategy {alternatives}{here['note']}."
        )


def loaded_backend():
    """The Keras backend of this process."""
    return keras.backend.backend()


def check_backend(wanted, run):
    """Raises ValueError unless Keras is loaded with the `wanted` backend
    (None: any); `run` names the run that wants it."""
    loaded = loaded_backend()
    if wanted not in (None, loaded):
        raise ValueError(
            f"{run} trains on the {wanted} backend, but Keras is loaded with {loaded}. Nothing was "
            f"changed; set KERAS_BACKEND={wanted} before Keras is imported (`dropact train` "
            "switches by itself)."
        )


def make(strategy="auto"):
    """The runtime for `--strategy strategy` on the loaded Keras backend.

    Make it before any other TensorFlow work: MultiWorkerMirroredStrategy
    configures the TensorFlow runtime, `keras.distribution.initialize` JAX's.

    Raises:
        ValueError: an unknown strategy, one of the other backend, or a
            backend that does not train (the message names the choices).
    """
    backend = loaded_backend()
    _check_strategy(strategy, backend)
    if backend == "jax":
        from keras_dropact.training import jax_runtime

        return jax_runtime.make(strategy)
    from keras_dropact.training import tf_runtime

    return tf_runtime.make(strategy)
