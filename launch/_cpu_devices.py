"""On a CPU-only machine XLA shows one device that runs the ES population on about one core; exposing one
host device per core lets the population shard over all cores. Must run before jax is imported; a no-op
when XLA_FLAGS already sets the count, and harmless on GPU hosts (it only affects the CPU platform)."""

import os

FLAG = "--xla_force_host_platform_device_count"


def expose_cpu_cores() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FLAG}={os.cpu_count() or 1}".strip()
