"""`keras_dropact.jax_config`: JAX's persistent compilation cache for training runs.

Each check runs in a fresh interpreter: JAX's cache settings are global.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("jax")

# Compiles one function after another compile has happened (a training
# run's first step comes after eager initialisation), and reports the cache
# folder, the programs stored there and the cache hits.
SCRIPT = textwrap.dedent(
    """
    import os, sys
    import jax, jax.numpy as jnp
    from keras_dropact.jax_config import enable_compilation_cache

    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kwargs: hits.append(event)
        if event == "/jax/compilation_cache/cache_hits" else None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.jit(lambda x: x + 1)(1.0).block_until_ready()
    folder = enable_compilation_cache(*sys.argv[1:])
    jax.jit(lambda x: jnp.sin(x) * 3)(jnp.ones(7)).block_until_ready()
    stored = os.listdir(folder) if os.path.isdir(folder) else []
    print("FOLDER", folder)
    print("STORED", sum(name.startswith("jit__lambda") for name in stored))
    print("HITS", len(hits))
    """
)


def run(*args, **env):
    environment = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    environment.update(env, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        env=environment, capture_output=True, text=True, check=True,
    ).stdout
    return {line.split()[0]: line.split(maxsplit=1)[1] for line in out.splitlines()
            if line.split() and line.split()[0] in ("FOLDER", "STORED", "HITS")}


def test_a_second_process_loads_the_compiled_program(tmp_path):
    cache = str(tmp_path / "cache")
    first = run(cache)
    assert first["FOLDER"] == cache
    assert int(first["STORED"]) >= 1 and first["HITS"] == "0"
    second = run(cache)
    assert second["STORED"] == first["STORED"]  # Nothing new compiled.
    assert int(second["HITS"]) >= 1


def test_the_users_folder_wins_then_the_xdg_default(tmp_path):
    users = str(tmp_path / "users")
    assert run(JAX_COMPILATION_CACHE_DIR=users)["FOLDER"] == users
    default = run(XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert default["FOLDER"] == str(tmp_path / "xdg" / "keras-dropact" / "jax")
    assert int(default["STORED"]) >= 1
