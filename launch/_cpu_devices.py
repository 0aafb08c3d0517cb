"""On a CPU-only machine XLA shows one device that runs the ES population on about one core; exposing one
host device per core lets the population shard over all cores. Must run before jax is imported; a no-op
when XLA_FLAGS already sets the count, and harmless on GPU hosts (it only affects the CPU platform).

XLA reads XLA_FLAGS when its first backend starts and aborts the process on a flag it does not know; the
message it prints first is easy to miss (and a test runner's capture hides it), so `xla_flags_problem`
checks the flags in a child process and returns that message."""

import os
import subprocess
import sys

FLAG = "--xla_force_host_platform_device_count"
OPT_FLAG = "--xla_backend_optimization_level"  # the tests compile with 0: faster to compile, slower to run


def expose_cpu_cores() -> None:
    """Entry points call this first: one CPU device per core, and a bad XLA_FLAGS stops with a message."""
    if FLAG not in os.environ.get("XLA_FLAGS", ""):
        set_device_count(os.cpu_count() or 1)
    check_xla_flags()


def check_xla_flags() -> None:
    problem = xla_flags_problem()
    if problem:
        sys.exit(f"error: XLA rejects XLA_FLAGS={os.environ['XLA_FLAGS']!r}: {problem}\nfix or unset XLA_FLAGS.")


def set_device_count(count: int) -> None:
    """XLA_FLAGS with its device count (if any) replaced by `count`, other flags kept."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(FLAG)]
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{FLAG}={count}"])


def xla_flags_problem() -> str | None:
    """XLA's complaint about XLA_FLAGS, or None when there are no flags besides the ones this repository
    sets itself (the device count, the tests' optimization level) or XLA accepts them (checked by starting
    the CPU backend in a child process: about a second)."""
    flags = os.environ.get("XLA_FLAGS", "").split()
    if all(f.startswith(FLAG) or f == f"{OPT_FLAG}=0" for f in flags):
        return None
    probe = subprocess.run([sys.executable, "-c", "import jax; jax.devices('cpu')"], capture_output=True, text=True,
                           env={**os.environ, "JAX_PLATFORMS": "cpu"})
    if probe.returncode == 0:
        return None
    lines = [line for line in probe.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"the check exited with status {probe.returncode}"
