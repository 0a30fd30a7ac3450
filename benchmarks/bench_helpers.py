"""What the benchmark scripts share: the sampler variants, an XLA compile clock.

- `dropact(sampler)`: a model factory activation, `DropActivation(p=0.95,
  sampler=...)` at every site (`"auto"`, `"bits"` or `"bytes"`);
- `randint_words()`: a context in which both samplers draw their random
  words as the package did before issue 18, with Keras' bounded
  `randint(-2**31, 2**31 - 1)` (two 32-bit draws per word on JAX, a modulo
  on TensorFlow) instead of one full-range draw. `"bytes"` inside it is the
  sampler as it was, so one run measures today's change against it.
- `CompileClock`: the XLA compile seconds JAX reports for a function.
"""

import contextlib
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

import keras_dropact.random  # noqa: E402
from keras_dropact import DropActivation  # noqa: E402
from keras_dropact.layers import DEFAULT_KEEP_PROBABILITY  # noqa: E402

P = DEFAULT_KEEP_PROBABILITY
BEFORE_18 = "bytes, randint words (before #18)"


def dropact(sampler):
    """The factory of DropActivation(p=0.95, sampler=sampler) sites."""
    return functools.partial(DropActivation, p=P, sampler=sampler)


def _randint_words(shape, seed):
    return keras.random.randint(shape, -(2**31), 2**31 - 1, dtype="int32", seed=seed)


@contextlib.contextmanager
def randint_words():
    """Samplers draw their words with Keras' bounded randint (before #18)."""
    saved = keras_dropact.random.random_words
    keras_dropact.random.random_words = _randint_words
    try:
        yield
    finally:
        keras_dropact.random.random_words = saved


class CompileClock:
    """Sums the XLA compile seconds of JAX functions whose name holds `name`.

    From jax.monitoring's backend_compile_duration events (compiles only:
    not tracing, lowering or running); JAX-only, and counting from creation.
    """

    def __init__(self, name="train_step"):
        import jax.monitoring

        self.name = name
        self.seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration" and (
            self.name in str(kwargs.get("fun_name", self.name))
        ):
            self.seconds += duration
