"""One ES run over several processes on JAX's own distributed runtime (jax.distributed).

Every process runs the same program on identical, host-local data: the config, the tasks and the initial
state. Their devices form one global mesh (`outer.mesh.make_mesh` uses `jax.devices()`, which after `initialize` lists
every process's devices); the population is sharded over it and only fitness scalars cross processes (gloo
on CPU). Everything the loop reads back is fully replicated, so each process takes the same decisions;
only process 0 writes files other than checkpoints (orbax coordinates those itself).

Call `initialize` before anything touches a JAX backend (jax.devices(), any computation, orbax).
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import sys
import threading
import time

import jax
import numpy as np


class DistributedError(RuntimeError):
    """The processes of a run could not be connected, or do not agree."""


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               timeout_s: int = 300) -> None:
    """Join the run's processes: explicitly (all three of coordinator HOST:PORT, num_processes, process_id),
    or, with none of them, from an environment JAX recognizes (SLURM, Open MPI, Cloud TPU)."""
    explicit = (coordinator, num_processes, process_id)
    if any(v is not None for v in explicit) and any(v is None for v in explicit):
        raise DistributedError("give all of --coordinator HOST:PORT, --num-processes and --process-id, or none of "
                               "them (--distributed) to detect them from SLURM / Open MPI.")
    if coordinator is not None:
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise DistributedError(f"--coordinator must be HOST:PORT (e.g. 10.0.0.1:1234), got {coordinator!r}")
        if not 0 <= process_id < num_processes:
            raise DistributedError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}")
    if timeout_s < 1:
        raise DistributedError(f"the initialization timeout must be at least 1 second, got {timeout_s}")
    if coordinator is not None and process_id != 0:
        # XLA aborts the whole process (no Python exception) when it cannot reach the coordinator in time, so
        # wait for process 0's port here first, where a timeout can still be a readable error.
        timeout_s = _wait_for_coordinator(coordinator, process_id, timeout_s)
    # Cross-process collectives on CPU (gloo is jax 0.10's default; set it so the choice is explicit).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # When the processes do not all join in time XLA aborts this process from C++ (exit 134, a stack trace);
    # a watchdog says why in one line first and exits with 2, like the launcher's other errors.
    who = f"process {process_id}" if process_id is not None else "this process"
    where = coordinator or "the detected coordinator"
    watchdog = threading.Timer(timeout_s, _give_up, args=(
        f"error: {who}: not all {num_processes or 'the'} processes joined the run at {where} within {timeout_s} s "
        f"(--init-timeout); did every process start, with the same --coordinator and --num-processes?",))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id, initialization_timeout=timeout_s)
    except ValueError as err:
        if coordinator is None:
            raise DistributedError(f"--distributed found no cluster environment JAX recognizes (SLURM, Open MPI, "
                                   f"Cloud TPU) ({err}); pass --coordinator HOST:PORT --num-processes N "
                                   f"--process-id I instead.") from None
        raise DistributedError(f"cannot start the distributed runtime: {err}") from None
    except Exception as err:  # XLA reports an unreachable coordinator as a RuntimeError (DEADLINE_EXCEEDED)
        where = coordinator or "the detected coordinator"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DistributedError(f"process {process_id if process_id is not None else '?'} could not join the run at "
                               f"{where} within {timeout_s} s (--init-timeout): {first}. Is process 0 running "
                               f"and is the address reachable from here?") from None
    finally:
        watchdog.cancel()
    if jax.default_backend() == "cpu":
        # Multi-process CPU runs whose programs came from the persistent compilation cache failed to set up
        # their gloo collectives ("Gloo context initialization failed", jax 0.10.2): they compile afresh.
        jax.config.update("jax_enable_compilation_cache", False)


def _give_up(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    os._exit(2)


def _wait_for_coordinator(coordinator: str, process_id: int, timeout_s: int) -> int:
    """Wait until the coordinator's TCP port accepts connections; the seconds of the timeout left."""
    host, _, port = coordinator.rpartition(":")
    start = time.monotonic()
    while True:
        left = timeout_s - (time.monotonic() - start)
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=max(0.1, min(2.0, left))).close()
            return max(1, math.ceil(left))
        except OSError as err:
            if left <= 0:
                raise DistributedError(f"process {process_id} could not reach the coordinator {coordinator} within "
                                       f"{timeout_s} s (--init-timeout): {err}. Is process 0 running, with the same "
                                       f"--coordinator, and is the address reachable from here?") from None
        time.sleep(0.25)


def is_main() -> bool:
    """Process 0 writes the run's metrics, run.json, baselines and plots."""
    return jax.process_index() == 0


def check_same_config(text: str) -> None:
    """Raise unless every process has the same `text` (the config's JSON): a mismatch would silently train
    each process on a different problem, or hang in a collective."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    digest = np.frombuffer(hashlib.sha256(text.encode()).digest(), np.uint8).astype(np.int32)
    digests = np.asarray(multihost_utils.process_allgather(digest))  # [processes, 32]
    differing = [i for i in range(digests.shape[0]) if not np.array_equal(digests[i], digests[0])]
    if differing:
        raise DistributedError(f"process(es) {differing} have a different config from process 0 (sha256 of the "
                               f"config JSON differs): start every process with the same arguments.")


def broadcast_float(value: float) -> float:
    """Process 0's `value` in every process, exactly (float64 sent as two uint32 words)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    words = np.array([value], np.float64).view(np.uint32)
    return float(np.asarray(multihost_utils.broadcast_one_to_all(words)).astype(np.uint32).view(np.float64)[0])
