"""Guards that stop a meta-training run from silently going wrong: a non-finite update is not applied,
and a generation that cannot fit in memory (or would take very long) is caught before the first one runs."""

from __future__ import annotations

import os
import time
import warnings

import jax
import jax.numpy as jnp

from metalearn.learners.base import PyTree

SLOW_GENERATION_S = 600.0  # warn beyond this lower bound on one generation's time


class GuardError(ValueError):
    """A run that cannot go on (non-finite numbers) or cannot start (a generation beyond the device)."""


def keep_if_finite(old: PyTree, new: PyTree, *checks: jax.Array) -> PyTree:
    """`new` if every float leaf of `new` and of `checks` is finite, else `old` unchanged (inside jit: the
    loop sees that the generation count did not advance and stops after saving `old`)."""
    leaves = [x for x in jax.tree.leaves((new, checks)) if jnp.issubdtype(x.dtype, jnp.floating)]
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
    return jax.tree.map(lambda a, b: jnp.where(finite, b, a), old, new)


def _memory_limit(devices: int) -> tuple[int, int, str]:
    """(bytes available, how many of the run's `devices` share them, what they are)."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]), 1, f"{device.device_kind} memory"
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), devices, "host RAM"  # CPU devices share it


def _matmul_rate() -> float:
    """FLOP/s of one device on a float32 matmul: an upper bound on what the learner's arithmetic reaches."""
    a = jnp.ones((512, 512), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    tic = time.perf_counter()
    for _ in range(5):
        out = f(a)
    out.block_until_ready()
    return 5 * 2 * 512 ** 3 / max(time.perf_counter() - tic, 1e-9)


def check_generation_budget(training, state) -> None:
    """Compile `training`'s generation step for `state` (jit reuses it) and refuse it when XLA's memory
    analysis exceeds the device's memory; warn when its FLOPs at the device's matmul rate (a lower bound on
    its time) exceed SLOW_GENERATION_S."""
    from metalearn.learners import step_flops

    cfg, devices = training.config, training.mesh.devices.size
    memory = training.generation_step.lower(state, training.train_tasks).compile().memory_analysis()
    per_device = memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
    limit, sharing, what = _memory_limit(devices)
    if per_device * sharing > limit:
        raise GuardError(f"one generation needs about {per_device * sharing / 2**30:.1f} GiB ({per_device / 2**30:.2f} "
                         f"GiB per device, XLA's estimate) but the {what} is {limit / 2**30:.1f} GiB; lower "
                         f"--episode-length, --chunk, --episodes-per-member or the learner's size.")
    members = getattr(cfg.outer, "population", 1)  # ES scores every member; backprop one
    flops = (step_flops(training.learner, training.spec) * members * cfg.episodes_per_member
             * len(training.train_tasks) * cfg.episode_length)
    seconds = flops / (_matmul_rate() * devices)
    if seconds > SLOW_GENERATION_S:
        warnings.warn(f"one generation is {flops:.2g} FLOPs: at least {seconds / 3600:.1f} hours on these {devices} "
                      f"device(s) even at their matmul rate; lower --episode-length or --population if that is "
                      f"not what you meant.", stacklevel=2)
