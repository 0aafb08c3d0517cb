"""ES `--chunk auto`: how many antithetic pairs one device evaluates at once (members per compiled kernel);
the meta-test evaluation sizes its kernels by the same rule (`episodes_per_kernel`).

The chunk bounds memory, never the result (the ES update is the same for every chunk). A kernel's working
set is chunk x 2 members x the bytes one member-step touches (state in, state out, temporaries: XLA's memory
analysis of the compiled step). On an accelerator the chunk fills half of the device's memory; on a CPU it
keeps the working set within one core's L2 cache (read from Linux), past which the per-connection LSTM is
memory-bound (bench/README.md: at 28x28 one pair per kernel beats eight; at 8x8 one pair beats three).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp

from metalearn.learners.base import Feedback, Learner, TaskSpec

CPU_CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
FALLBACK_L2_BYTES = 2 * 2**20  # a common per-core L2 where the OS does not say (macOS, Windows, containers)
DEVICE_MEMORY_FRACTION = 0.5  # of an accelerator's memory; the rest is for XLA's own buffers and the data


def parse_cache_size(text: str) -> int:
    """Linux's cache size notation ("2048K", "2M", "1G" or plain bytes) in bytes."""
    text = text.strip().upper()
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    return int(text.rstrip("KMG")) * scale


def core_l2_bytes(cache_dir: Path = CPU_CACHE_DIR) -> int:
    """One core's L2 cache as Linux reports it (not lscpu's sum over cores), else FALLBACK_L2_BYTES."""
    for index in sorted(cache_dir.glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                return parse_cache_size((index / "size").read_text())
        except (OSError, ValueError):
            break
    return FALLBACK_L2_BYTES


CPU_BUDGET_BYTES = core_l2_bytes()


@functools.cache  # a compile per call; ES and the evaluation ask for the same learner
def member_step_bytes(learner: Learner, spec: TaskSpec) -> int:
    """Bytes one member-step touches: XLA's memory analysis of the compiled learner step (one task)."""
    key = jax.random.key(0)
    meta = jax.eval_shape(lambda k: learner.init_meta_params(k, spec), key)
    state = jax.eval_shape(lambda m, k: learner.init_state(m, k, spec), meta, key)
    x = jax.ShapeDtypeStruct((spec.input_size,), jnp.float32)
    feedback = jax.eval_shape(lambda: Feedback.zeros(spec.num_classes))
    memory = jax.jit(learner.step).lower(meta, state, x, feedback).compile().memory_analysis()
    return int(memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes)


def device_budget(device: jax.Device) -> int:
    """Bytes a kernel's members may use on `device`."""
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(DEVICE_MEMORY_FRACTION * stats["bytes_limit"])
    return CPU_BUDGET_BYTES


def members_per_kernel(learner: Learner, spec: TaskSpec, limit: int, device: jax.Device | None = None) -> int:
    """Members (learner states: one per episode and inner-batch copy) one kernel runs at once: as many as
    fit the device's budget, at least 1, at most `limit`."""
    fit = device_budget(device or jax.local_devices()[0]) // member_step_bytes(learner, spec)
    return int(max(1, min(limit, fit)))


def episodes_per_kernel(learner: Learner, spec: TaskSpec, episodes: int, num_devices: int, batch: int = 1) -> int:
    """The evaluation's chunk: episodes one device runs at once, of its share of `episodes`, each with
    `batch` state copies (the inner batch)."""
    per_device = -(-episodes // num_devices)
    return max(1, members_per_kernel(learner, spec, per_device * batch) // batch)


def auto_chunk(learner: Learner, spec: TaskSpec, pairs_per_device: int, tasks_per_member: int = 1,
               device: jax.Device | None = None) -> int:
    """Pairs per kernel: as many as fit the device's budget, at least 1, at most all of a device's pairs."""
    per_pair = 2 * tasks_per_member
    return max(1, members_per_kernel(learner, spec, per_pair * pairs_per_device, device) // per_pair)
