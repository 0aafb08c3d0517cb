"""Eight fake CPU devices for every test: set before jax is imported anywhere, whatever XLA_FLAGS held."""

import os

from launch._cpu_devices import FLAG, set_device_count, xla_flags_problem

set_device_count(8)

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
