"""A meta-training run on disk, or a pretrained folder: config, learner and meta-parameters, for notebooks
and scripts.

    from metalearn import load_run
    run = load_run("runs/default")          # latest checkpoint; load_run(path, step=100) for another
    run = load_run("pretrained/vsml-mnist7")  # a folder written by inspect_checkpoint.py --export-pretrained
    run.learner, run.meta_params, run.config
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path
from typing import NamedTuple

import jax

from metalearn.learners import Learner, TaskSpec, make_learner
from metalearn.learners.base import PyTree
from metalearn.training import checkpoint, pretrained
from metalearn.training.config import MetaTrainConfig

PACKAGES = ("jax", "jaxlib", "flax", "optax", "evosax", "chex", "orbax-checkpoint", "numpy")


class Run(NamedTuple):
    run_dir: Path
    step: int  # completed generations of the loaded checkpoint
    steps: list[int]  # every saved checkpoint
    config: MetaTrainConfig
    learner: Learner
    meta_params: PyTree
    state: dict  # the whole saved state (ES mean, optimizer state, generation, key) as numpy arrays; {} for a
    # pretrained folder, which holds only the meta-parameters
    info: dict  # run.json: task shape, command and the environment the run was made with (+ "pretrained")


def environment() -> dict:
    """Package versions and devices, recorded in run.json so a result can be traced to its set-up."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    devices = jax.devices()
    return {"python": platform.python_version(), "packages": versions, "platform": devices[0].platform,
            "device_kind": devices[0].device_kind, "device_count": len(devices),
            "process_count": jax.process_count(), "host": platform.node()}


def write_run_info(run_dir: Path, config: MetaTrainConfig, spec: TaskSpec, mesh_devices: int,
                   command: str | None = None) -> None:
    """run.json; `command` is the command line that started the run (None: not started from one)."""
    info = {"config": config.to_json(), "task_spec": spec._asdict(), "mesh_devices": mesh_devices,
            "command": command, "environment": environment()}
    (Path(run_dir) / "run.json").write_text(json.dumps(info, indent=1))


def load_run(path: str | Path, step: int | None = None, best: bool = False) -> Run:
    """Load a run's config, learner and meta-parameters: the latest checkpoint, or `step`, or with `best` the
    one with the best val_score during training; or a pretrained folder's (its only checkpoint)."""
    run_dir = Path(path)
    if not run_dir.is_dir():
        raise checkpoint.CheckpointError(f"run directory {run_dir} does not exist; pass the --run-dir of a "
                                         f"meta_train.py run (e.g. runs/default) or a pretrained folder.")
    if pretrained.is_pretrained(run_dir):
        return _load_pretrained(run_dir, step, best)
    if not any((run_dir / name).exists() for name in (checkpoint.LATEST, "run.json", "metrics.jsonl")):
        raise checkpoint.CheckpointError(
            f"{run_dir} is neither a meta-training run nor a pretrained folder: a run directory (the --run-dir "
            f"of launch/meta_train.py) holds {checkpoint.LATEST}/ with orbax checkpoints and run.json, a "
            f"pretrained folder (written by `python launch/inspect_checkpoint.py RUN --export-pretrained DIR`) "
            f"holds {pretrained.PARAMS} and run.json, and it has neither. Check the path: e.g. runs/default for "
            f"a run, pretrained/<name> for a shipped algorithm.")
    kind = checkpoint.BEST if best else checkpoint.LATEST
    steps = checkpoint.saved_steps(run_dir, kind)
    if not steps:
        raise checkpoint.CheckpointError(f"{run_dir} holds no finished checkpoint (looked in {run_dir / kind}); "
                                         f"a run saves one every --checkpoint-every generations.")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise checkpoint.CheckpointError(f"step {step} was not saved in {run_dir}; saved steps: "
                                         f"{', '.join(map(str, steps))}.")
    config = checkpoint.load_config(run_dir, step, kind)
    state = checkpoint.restore_raw(run_dir, step, kind)
    info_path = run_dir / "run.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    try:
        meta_params = state["es"]["params"]
    except (KeyError, TypeError):
        raise checkpoint.CheckpointError(f"checkpoint {step} in {run_dir} has no ES parameters; is it a "
                                         f"metalearn checkpoint?") from None
    return Run(run_dir, step, steps, config, make_learner(config.learner), meta_params, state, info)


def _load_pretrained(folder: Path, step: int | None, best: bool) -> Run:
    """A pretrained folder as a Run with one step; `step` and `best` must describe the checkpoint it holds."""
    config, info, meta_params = pretrained.read(folder)
    block = info["pretrained"]
    if step is not None and step != block["generation"]:
        raise checkpoint.CheckpointError(f"{folder} is a pretrained folder holding only generation "
                                         f"{block['generation']}, not {step}; leave out --step.")
    if best and block["checkpoint"] != "best":
        raise checkpoint.CheckpointError(f"{folder} holds the latest checkpoint of its run (generation "
                                         f"{block['generation']}), not the best by validation; leave out --best.")
    generation = block["generation"]
    return Run(folder, generation, [generation], config, make_learner(config.learner), meta_params, {}, info)
