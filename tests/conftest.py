"""Eight fake CPU devices for every test: set before jax is imported anywhere, whatever XLA_FLAGS held. One
compilation cache for the session (a fresh folder, removed at exit): the CLI runs in subprocesses and the
tests that build the same small configurations compile each program once. The tests' programs are tiny and
compiled once each, so compiling dominates: LLVM's optimization level 0 (unless XLA_FLAGS sets one) takes
17-28% off the suite's time on 2 cores; subprocesses inherit it."""

import atexit
import os
import shutil
import tempfile

from launch._cpu_devices import FLAG, OPT_FLAG, set_device_count, xla_flags_problem

set_device_count(8)
if OPT_FLAG not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += f" {OPT_FLAG}=0"
_cache = tempfile.mkdtemp(prefix="metalearn-xla-")
atexit.register(shutil.rmtree, _cache, ignore_errors=True)
os.environ.update(JAX_COMPILATION_CACHE_DIR=_cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")

import jax  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    """XLA aborts the process on a flag it does not know, before pytest can show anything: say so first."""
    problem = xla_flags_problem()
    if problem:
        raise pytest.UsageError(f"XLA_FLAGS={os.environ['XLA_FLAGS']!r} is rejected by XLA: {problem}")


@pytest.fixture(scope="session")
def devices():
    assert len(jax.devices()) == 8, f"tests expect 8 fake CPU devices ({FLAG}=8, set in conftest.py)"
    return jax.devices()
