"""JAX settings for training runs (`dropact train --backend jax`).

JAX compiles a training step with XLA before running it: seconds for a
ResNet-20 on a CPU, a minute or more for a deep network on a GPU. Its
persistent compilation cache keeps the compiled programs on disk, so a
second run of the same network and batch (a resumed run, the next seed of
a study) loads them instead: on this project's 2-core CPU the first step of
ResNet-56 with Drop-Activation took about a third as long with a warm cache
(docs/reports/performance.md, `benchmarks/compile_cost.py --cache`).

This module imports JAX only when called, so it sits below every other
module of the package.
"""

import os

DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "keras-dropact", "jax")


def enable_compilation_cache(cache_dir=None):
    """Turns on JAX's persistent compilation cache; returns its folder.

    The folder is, in order: `cache_dir` if given; the one the user set
    already (`JAX_COMPILATION_CACHE_DIR` or `jax.config`); else
    `$XDG_CACHE_HOME/keras-dropact/jax` (`~/.cache/keras-dropact/jax`).
    JAX's other cache settings (which programs are worth storing: those
    that took at least a second to compile) are left as they are. Call it
    before the training step compiles (compiles before it, such as Keras'
    eager initialisation, do not stop it from working); calling it again is
    harmless.

    Args:
        cache_dir: a folder (created by JAX if missing), or None.
    """
    import jax

    if cache_dir is None:
        cache_dir = jax.config.jax_compilation_cache_dir
    if not cache_dir:
        cache_home = os.environ.get("XDG_CACHE_HOME")
        cache_dir = (
            os.path.join(cache_home, "keras-dropact", "jax")
            if cache_home
            else DEFAULT_CACHE_DIR
        )
    cache_dir = os.path.expanduser(os.fspath(cache_dir))
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    return cache_dir
