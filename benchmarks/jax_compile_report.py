"""A pytest plugin: how many XLA compiles each test causes on JAX, and how long they take.

    KERAS_BACKEND=jax python -m pytest -p jax_compile_report tests/test_layers.py
    (with benchmarks/ on PYTHONPATH; benchmarks/device_check.sh loads it)

Eager Keras code on JAX (tests call layers outside `jax.jit`) compiles every
op once per new shape and dtype: milliseconds each on a CPU, far more on a
GPU, so a test suite that is quick on a CPU can spend minutes compiling on
a GPU. The summary lists the compiles and their seconds per test file and
the tests with the most. It does nothing on other backends.
"""

import collections
import os

import pytest

_COMPILES = collections.defaultdict(lambda: [0, 0.0])
_CURRENT = []


def pytest_configure(config):
    if os.environ.get("KERAS_BACKEND") != "jax":
        return
    import jax.monitoring

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration" and _CURRENT:
            _COMPILES[_CURRENT[-1]][0] += 1
            _COMPILES[_CURRENT[-1]][1] += duration

    jax.monitoring.register_event_duration_secs_listener(listen)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _CURRENT.append(item.nodeid)
    yield
    _CURRENT.pop()


def pytest_terminal_summary(terminalreporter):
    if not _COMPILES:
        return
    write = terminalreporter.write_line
    files = collections.defaultdict(lambda: [0, 0.0])
    for nodeid, (count, seconds) in _COMPILES.items():
        files[nodeid.split("::")[0]][0] += count
        files[nodeid.split("::")[0]][1] += seconds
    total = [sum(c for c, _ in files.values()), sum(s for _, s in files.values())]
    write(f"XLA compiles: {total[0]} in {total[1]:.1f} s")
    for name, (count, seconds) in sorted(files.items()):
        write(f"  {name}: {count} compiles, {seconds:.1f} s")
    write("  tests with the most compiles:")
    ranked = sorted(_COMPILES.items(), key=lambda item: -item[1][1])
    for nodeid, (count, seconds) in ranked[:15]:
        write(f"    {count:5d} {seconds:7.2f} s  {nodeid}")
