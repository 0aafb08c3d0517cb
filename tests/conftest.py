"""Eight fake CPU devices for every test: set before jax is imported anywhere."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count", "--unused")
    + " --xla_force_host_platform_device_count=8"
).strip()

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def devices():
    assert len(jax.devices()) == 8, "tests expect 8 fake CPU devices (XLA_FLAGS set in conftest.py)"
    return jax.devices()
