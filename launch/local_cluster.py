#!/usr/bin/env python
"""Run one meta-training run as N processes on this machine, each with K fake CPU devices: the multi-process
code path (jax.distributed, gloo collectives, a global mesh of N x K devices) without a cluster.

    python launch/local_cluster.py --processes 2 --devices-per-process 4 -- --run-dir runs/2x4 --population 16

Every argument after the launcher's own (a `--` separator is optional) goes to every launch/meta_train.py
process, plus --coordinator 127.0.0.1:<free port> --num-processes N --process-id I. The launcher waits for
all processes; if one fails it kills the others and exits non-zero naming it (with its exit code, or 1
when it was killed by a signal), so a dead worker never leaves the rest hanging in a collective. Resume a stopped run by launching again with --resume.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

META_TRAIN = Path(__file__).resolve().parent / "meta_train.py"
FLAG = "--xla_force_host_platform_device_count"
GRACE_S = 5.0  # after Ctrl-C, how long the processes get before SIGKILL


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_env(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    flags = " ".join(f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(FLAG))
    env["XLA_FLAGS"] = f"{flags} {FLAG}={devices}".strip()
    return env


def describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def stop(procs: list[subprocess.Popen], grace_s: float = 0.0) -> None:
    """SIGKILL whatever still runs, after `grace_s`. Not SIGTERM: JAX's distributed runtime (its preemption service,
    on by default) catches SIGTERM and keeps going, and a process whose peer died can only wait in a collective; the
    checkpoints on disk are complete either way (orbax renames a finished save into place)."""
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--processes", type=int, default=2, help="processes to start (default: 2)")
    p.add_argument("--devices-per-process", type=int, default=4, help="fake CPU devices each (default: 4)")
    p.add_argument("--port", type=int, default=0, help="coordinator port on 127.0.0.1 (default: a free one)")
    args, rest = p.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if args.processes < 1 or args.devices_per_process < 1:
        print("error: --processes and --devices-per-process must be at least 1", file=sys.stderr)
        return 2
    coordinator = f"127.0.0.1:{args.port or free_port()}"
    env = worker_env(args.devices_per_process)
    procs = [subprocess.Popen([sys.executable, str(META_TRAIN), *rest, "--coordinator", coordinator,
                               "--num-processes", str(args.processes), "--process-id", str(i)], env=env)
             for i in range(args.processes)]
    print(f"local cluster: {args.processes} processes x {args.devices_per_process} CPU devices, coordinator "
          f"{coordinator}, pids {' '.join(str(proc.pid) for proc in procs)}", file=sys.stderr, flush=True)
    try:
        while True:
            codes = [proc.poll() for proc in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                print(f"error: process {i} (pid {procs[i].pid}) {describe(code)}; stopping the other "
                      f"process(es). Launch again with --resume to continue from the last checkpoint.",
                      file=sys.stderr, flush=True)
                stop(procs)
                return code if code > 0 else 1
            if all(c == 0 for c in codes):
                return 0
            time.sleep(0.2)
    except KeyboardInterrupt:  # the terminal sent SIGINT to the processes as well
        stop(procs, GRACE_S)
        return 130


if __name__ == "__main__":
    sys.exit(main())
