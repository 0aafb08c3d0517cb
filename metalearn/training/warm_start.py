"""Warm starts: a run begins from another run's (or a pretrained folder's) meta-parameters.

Why: the size axis asks what an outer optimizer does with extra algorithm capacity, which cold starts cannot
show when ES never leaves chance at large sizes; starting every point from the same learned algorithm
separates "cannot find a learner" from "what it does once it has one". A learner that holds several copies
of a smaller one's parameters (VSML with `groups`) says how to fill them (`from_single_group`); any other
learner must match the source's parameter shapes exactly.
"""

from __future__ import annotations

import jax
import numpy as np

from metalearn.learners import Learner, TaskSpec
from metalearn.learners.base import PyTree
from metalearn.training.run import load_run


def _shapes(tree: PyTree) -> tuple:
    leaves, structure = jax.tree.flatten(tree)
    return structure, tuple(np.shape(x) for x in leaves)


def warm_start(learner: Learner, spec: TaskSpec, template: PyTree, source: str) -> PyTree:
    """`learner`'s meta-parameters taken from the run or pretrained folder `source` (its latest checkpoint):
    the same arrays when the parameter trees match `template` (the learner's own initialisation), or the
    learner's expansion of them (`from_single_group`). Anything else is a one-paragraph error."""
    run = load_run(source)
    params = run.meta_params
    if _shapes(params) == _shapes(template):
        return jax.tree.map(lambda x, t: np.asarray(x, dtype=t.dtype), params, template)
    expand = getattr(learner, "from_single_group", None)
    if expand is not None:
        try:
            return expand(run.learner, params, spec)
        except ValueError as err:
            raise ValueError(f"cannot warm-start from {source}: {err}") from None
    raise ValueError(
        f"cannot warm-start {learner.name} from {source}: its meta-parameters (learner "
        f"{run.config.learner!r}) do not have the shapes this learner's do. A warm start needs the same learner "
        f"and options (a VSML with groups may also start from a one-group VSML); pass a run of the same "
        f"learner, or drop --init-from.")
