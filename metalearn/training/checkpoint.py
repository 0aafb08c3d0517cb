"""Orbax checkpoints of a meta-training run: ES state, generation, PRNG key and the config as JSON.

Orbax writes each step to a temporary directory and renames it when complete, so a run killed mid-save
leaves the previous checkpoint intact; only finalized steps are ever listed or restored. Nothing is
pickled: arrays go through tensorstore, the config through JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp

from metalearn.training.config import MetaTrainConfig


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable or not of this project."""


LATEST, BEST = "checkpoints", "best"  # the last few checkpoints; the one with the best meta-test score
KEEP = {LATEST: 3, BEST: 1}


def _closed_loop_error(exc: BaseException | None) -> bool:
    return isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed"


def _silence_closed_loop_errors() -> None:
    """A failed restore leaves tensorstore reads in flight that complete later, into orbax's closed asyncio
    loop, each printing a 'RuntimeError: Event loop is closed' traceback after the real error. From the
    first failure on, this process drops those (and only those)."""
    if getattr(sys.unraisablehook, "drops_closed_loop", False):
        return
    unraisable, excepthook = sys.unraisablehook, sys.excepthook

    def quiet_unraisable(u):
        if not _closed_loop_error(u.exc_value):
            unraisable(u)

    def quiet_excepthook(kind, value, tb):
        if not _closed_loop_error(value):
            excepthook(kind, value, tb)

    quiet_unraisable.drops_closed_loop = True
    sys.unraisablehook, sys.excepthook = quiet_unraisable, quiet_excepthook


def _manager(run_dir: Path, write: bool = False, kind: str = LATEST) -> ocp.CheckpointManager:
    """Readers never create or clean anything, so inspecting a live run cannot disturb its writer."""
    options = ocp.CheckpointManagerOptions(max_to_keep=KEEP[kind], create=write,
                                           enable_async_checkpointing=False, cleanup_tmp_directories=write)
    return ocp.CheckpointManager(Path(run_dir).absolute() / kind, options=options, item_names=("state", "config"))


def save(run_dir: Path, generation: int, state: Any, config: MetaTrainConfig, kind: str = LATEST) -> None:
    """Write checkpoint `generation` (a completed-generation count) and wait until it is final on disk.

    A step that already exists is left as it is: a resumed run recomputes identical states."""
    with _manager(run_dir, write=True, kind=kind) as manager:
        if generation in manager.all_steps():
            return
        manager.save(generation, args=ocp.args.Composite(
            state=ocp.args.StandardSave(jax.device_get(state)),
            config=ocp.args.JsonSave(config.to_json()),
        ))
        manager.wait_until_finished()


def saved_steps(run_dir: Path, kind: str = LATEST) -> list[int]:
    if not (Path(run_dir) / kind).is_dir():
        return []
    with _manager(run_dir, kind=kind) as manager:
        return sorted(manager.all_steps())


def load_config(run_dir: Path, step: int, kind: str = LATEST, steps: Sequence[int] = ()) -> MetaTrainConfig:
    with _manager(run_dir, kind=kind) as manager:
        try:
            data = manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]
        except Exception as err:  # orbax raises assorted types for unreadable directories
            raise _damaged(run_dir, step, err, steps, "the config of ") from None
    return MetaTrainConfig.from_json(data)


def restore(run_dir: Path, step: int, template: Any, steps: Sequence[int] = ()) -> Any:
    """Restore the state saved at `step` with the structure, shapes and dtypes of `template`; a damaged one
    names the earlier `steps` to resume from instead."""
    abstract = jax.tree.map(lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), jax.device_get(template))
    with _manager(run_dir) as manager:
        try:
            return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
        except Exception as err:
            raise _damaged(run_dir, step, err, steps) from None


def resume_step(run_dir: Path, steps: Sequence[int], requested: int | None) -> int:
    """The step a resume starts from: the last of `steps`, or `requested`, which must be one of them."""
    if requested is None:
        return steps[-1]
    if requested not in steps:
        raise CheckpointError(f"--resume-from {requested}: no such checkpoint in {run_dir}; saved steps: "
                              f"{', '.join(map(str, steps)) or 'none'}.")
    return requested


def discard_after(run_dir: Path, step: int) -> None:
    """Delete the checkpoints saved after `step` (resuming from an earlier one recomputes them)."""
    with _manager(run_dir, write=True) as manager:
        for later in [s for s in manager.all_steps() if s > step]:
            manager.delete(later)


def _damaged(run_dir: Path, step: int, err: Exception, steps: Sequence[int], what: str = "") -> CheckpointError:
    """The error for an unreadable checkpoint, naming the earlier `steps` one could resume from."""
    _silence_closed_loop_errors()
    reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
    earlier = [s for s in steps if s < step]
    offer = (f"; resume from the previous one with --resume --resume-from {earlier[-1]} (saved: "
             f"{', '.join(map(str, earlier))})" if earlier else "")
    return CheckpointError(f"cannot read {what}checkpoint {step} in {run_dir}: it is damaged{offer}. "
                           f"Reason: {reason}")


def restore_raw(run_dir: Path, step: int, kind: str = LATEST) -> dict:
    """The saved state as nested dicts of numpy arrays, read from orbax's metadata: no template, no pickle."""
    with _manager(run_dir, kind=kind) as manager:
        try:
            return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
        except Exception as err:
            raise _damaged(run_dir, step, err, ()) from None
