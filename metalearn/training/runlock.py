"""One writer per run directory: an exclusive `flock` on RUN/.lock, held for the life of a run.

The lock file holds the writer's pid and host, so a second writer can say who holds it. The kernel drops
a flock when its process dies (kill -9 included), so a lock left by a dead process is simply taken over.
flock is local to one machine (and, on NFS, only as reliable as the server's lock support).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import Iterator

LOCK_NAME = ".lock"


class RunDirError(ValueError):
    """A run directory that cannot be written, or that another process is writing."""


def check_run_dir(run_dir: Path) -> None:
    """Raise unless `run_dir` is (or can become) a directory this process can write."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} is a file, not a directory; choose another --run-dir.")
    existing = next((p for p in (run_dir, *run_dir.absolute().parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"cannot write to {existing} (permission denied), so {run_dir} cannot hold a run; "
                          f"choose a --run-dir you can write to.")


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError):
        text = path.read_text().split()
        if text:
            return f"process {text[0]}" + (f" on {text[1]}" if len(text) > 1 else "")
    return "another process"


@contextlib.contextmanager
def hold(run_dir: Path, what: str = "run") -> Iterator[None]:
    """Hold the exclusive lock of `run_dir` (created if missing) for the `with` block; raise RunDirError at
    once if another process holds it."""
    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    path = run_dir / LOCK_NAME
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunDirError(f"cannot create the lock file {path}: {err.strerror}; choose another directory.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirError(f"{run_dir} is in use by {_holder(path)} (lock {path}); two writers would corrupt "
                              f"the {what}: wait for it to finish or stop it first.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with a new writer)
