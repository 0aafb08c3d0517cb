"""Warm starts: a run begins from another run's (or a pretrained folder's) meta-parameters.

Why: the size axis asks what an outer optimizer does with extra algorithm capacity, which cold starts cannot
show when ES never leaves chance at large sizes; starting every point from the same learned algorithm
separates "cannot find a learner" from "what it does once it has one". The source must be the same learner
with the same options, except for those that only say how often its parameters are used or copied (VSML's
`groups`, `shared_base`, `hidden`) or how its connections' outputs are weighed (`input_weights`); a learner
that holds several copies of the source's parameters says how to fill them (`from_single_group`). A
pretrained folder holds one checkpoint; a run gives its latest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np

from metalearn.learners import Learner
from metalearn.learners.base import PyTree
from metalearn.training.checkpoint import CheckpointError
from metalearn.training.run import load_run

REPO = Path(__file__).resolve().parents[2]
# Options that change how many times the algorithm's parameters are used or copied, not what they compute.
REUSING_OPTIONS = ("groups", "shared_base", "hidden", "input_weights")


def resolve(source: str | Path) -> Path:
    """`source` as given, or relative to the repository (where `pretrained/` is) if it is not found here."""
    path = Path(source)
    if not path.exists() and not path.is_absolute() and (REPO / path).exists():
        return REPO / path
    return path


def _shapes(tree: PyTree) -> tuple:
    leaves, structure = jax.tree.flatten(tree)
    return structure, tuple(np.shape(x) for x in leaves)


def _differing_options(learner: Learner, source: Learner) -> list[str]:
    """The options (dataclass fields) of `learner` and `source` that differ, besides REUSING_OPTIONS."""
    mine, theirs = dataclasses.asdict(learner), dataclasses.asdict(source)
    return [f"{k}={mine[k]!r} (source {theirs[k]!r})" for k in mine
            if k not in REUSING_OPTIONS and mine[k] != theirs.get(k)]


def warm_start(learner: Learner, template: PyTree, source: str) -> PyTree:
    """`learner`'s meta-parameters taken from the run or pretrained folder `source`: the same arrays when the
    parameter trees match `template` (the learner's own initialisation), or the learner's expansion of them
    (`from_single_group`), cast to the template's dtypes. Anything else is a one-paragraph error."""
    try:
        run = load_run(resolve(source))
    except CheckpointError as err:
        raise CheckpointError(f"--init-from {source}: {err}") from None
    differing = type(run.learner) is type(learner) and _differing_options(learner, run.learner)
    if type(run.learner) is not type(learner) or differing:
        what = f"it is {run.learner.name}" if not differing else "these options differ: " + ", ".join(differing)
        raise ValueError(f"cannot warm-start {learner.name} from {source} (learner {run.config.learner!r}): {what}. "
                         f"A warm start needs the same learner and options (only {', '.join(REUSING_OPTIONS)} "
                         f"may differ); pass a run of the same learner, or drop --init-from.")
    params = run.meta_params
    if _shapes(params) != _shapes(template):
        expand = getattr(learner, "from_single_group", None)
        try:
            params = expand(run.learner, params) if expand else params
        except ValueError as err:
            raise ValueError(f"cannot warm-start from {source}: {err}") from None
    if _shapes(params) != _shapes(template):
        raise ValueError(f"cannot warm-start {learner.name} from {source}: its meta-parameters do not have the "
                         f"shapes of this learner's (other layers or task shape); pass a run of the same learner "
                         f"and task shape.")
    return jax.tree.map(lambda x, t: np.asarray(x, dtype=t.dtype), params, template)
