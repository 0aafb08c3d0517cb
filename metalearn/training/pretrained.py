"""Pretrained folders: one checkpoint's meta-parameters with the run's config and a model card, to ship.

    pretrained/<name>/meta_params.npz   the meta-parameters, one float array per leaf ('w_h'; '0/w_h' per layer)
    pretrained/<name>/run.json          the run's run.json (config as checkpointed, task shape, command,
                                        environment) plus "pretrained": which checkpoint, how it was chosen,
                                        its metrics line and the meta-training time spent to reach it
    pretrained/<name>/README.md         the model card (model_card.py)

Why .npz + JSON and not an orbax checkpoint of the meta-parameters alone: a single file any numpy reads with
allow_pickle=False (nothing is unpickled, no orbax version or directory layout in what is shipped, a few KB
for VSML), and `load_run` needs only the config to rebuild the learner's exact pytree from it (names and
shapes checked), where an orbax checkpoint would still need a fake optimizer state for the run's layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np

from metalearn.learners import TaskSpec, learner_sizes, make_learner
from metalearn.learners.base import PyTree
from metalearn.training.checkpoint import CheckpointError
from metalearn.training.config import MetaTrainConfig
from metalearn.training.metrics import read_metrics
from metalearn.training.model_card import model_card
from metalearn.training.selection import best_selection

if TYPE_CHECKING:
    from metalearn.training.run import Run

FORMAT = "metalearn-pretrained/1"
PARAMS, INFO, CARD = "meta_params.npz", "run.json", "README.md"
MAX_BYTES = 1 << 20  # what a folder of pretrained/ may weigh


def leaf_name(path: tuple) -> str:
    """'0/w_h' for the leaf at path (list index 0, dict key 'w_h'): the names of the .npz entries."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def flatten(tree: PyTree) -> dict[str, np.ndarray]:
    """{'a/b': array} from nested dicts and lists (the form orbax restores without a template)."""
    return {leaf_name(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def is_pretrained(path: str | Path) -> bool:
    return (Path(path) / PARAMS).is_file()


def export(run: Run, dest: Path, best: bool) -> Path:
    """Write `run`'s loaded checkpoint (`best`: it came from best/) as the pretrained folder `dest`, its model
    card made from the run's run.json and metrics.jsonl."""
    if "pretrained" in run.info:
        raise ValueError(f"{run.run_dir} is already a pretrained folder; copy it to make another.")
    if "task_spec" not in run.info:
        raise ValueError(f"{run.run_dir} has no run.json with the task shape its meta-parameters were made for "
                         f"(a run made by an older version?); a pretrained folder needs it.")
    records = read_metrics(run.run_dir)
    done = [r for r in records if r["generation"] <= run.step]
    block = {
        "source": str(run.run_dir), "generation": run.step, "checkpoint": "best" if best else "latest",
        "selection": best_selection(run.run_dir) if best else None,
        "evaluation": next((r for r in done if r["generation"] == run.step and "val_score" in r), None),
        "budget": {"seconds": sum(r["seconds"] for r in done), "run_seconds": sum(r["seconds"] for r in records),
                   "run_generations": max((r["generation"] for r in records), default=run.step)},
    }
    info = {**run.info, "config": run.config.to_json(), "pretrained": block}
    spec = TaskSpec(**run.info["task_spec"])
    card = model_card(Path(dest).name, str(dest), info, learner_sizes(run.learner, spec))
    return write(dest, run.meta_params, info, card)


def write(dest: Path, meta_params: PyTree, info: dict, card: str) -> Path:
    """Write a pretrained folder (refusing one that exists and is not empty, or that would exceed MAX_BYTES)."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"--export-pretrained {dest}: it already exists and is not an empty folder; name a new "
                         f"folder (e.g. pretrained/<name>), or delete this one first to replace it.")
    arrays = flatten(meta_params)
    size = sum(a.nbytes for a in arrays.values())
    if size > MAX_BYTES:
        raise ValueError(f"--export-pretrained {dest}: the meta-parameters take {size:,} bytes, more than the "
                         f"{MAX_BYTES:,} a pretrained folder may hold; ship this algorithm elsewhere (--export "
                         f"params.npz writes the same arrays without the limit).")
    dest.mkdir(parents=True, exist_ok=True)
    np.savez(dest / PARAMS, **arrays)
    (dest / INFO).write_text(json.dumps({**info, "pretrained": {"format": FORMAT, **info["pretrained"]}}, indent=1))
    (dest / CARD).write_text(card)
    return dest


def read(path: Path) -> tuple[MetaTrainConfig, dict, PyTree]:
    """(config, run.json, meta-parameters) of a pretrained folder, the parameters in the learner's own pytree."""
    path = Path(path)
    try:
        info = json.loads((path / INFO).read_text())
        if info.get("pretrained", {}).get("format") != FORMAT:
            raise ValueError(f"its {INFO} does not say format {FORMAT!r}")
        config = MetaTrainConfig.from_json(info["config"])
        spec = TaskSpec(**info["task_spec"])
        learner = make_learner(config.learner)
        template = jax.eval_shape(lambda k: learner.init_meta_params(k, spec), jax.random.key(0))
        paths, treedef = jax.tree_util.tree_flatten_with_path(template)
        with np.load(path / PARAMS, allow_pickle=False) as saved:
            leaves = []
            for leaf_path, like in paths:
                name = leaf_name(leaf_path)
                if name not in saved.files or saved[name].shape != like.shape:
                    raise ValueError(f"{PARAMS} has no array {name!r} of shape {like.shape} that "
                                     f"{config.learner} needs")
                leaves.append(saved[name].astype(like.dtype))
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable pretrained folder ({type(err).__name__}: {err}); "
                              f"write it again with `python launch/inspect_checkpoint.py RUN --export-pretrained "
                              f"{path}`.") from None
    return config, info, jax.tree_util.tree_unflatten(treedef, leaves)
