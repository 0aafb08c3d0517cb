"""Learners: learned (meta-parameterized) and hand-designed learning algorithms behind one interface."""

from __future__ import annotations

from metalearn.learners.base import (Feedback, Learner, Sizes, TaskSpec, learner_config, learner_sizes,
                                     step_flops)
from metalearn.learners.class_mean import ClassMean
from metalearn.learners.online_sgd import OnlineSGD
from metalearn.learners.vsml import VSML
from metalearn.spec import build, split_spec

LEARNERS = {cls.name: cls for cls in (VSML, OnlineSGD, ClassMean)}


def make_learner(spec: str) -> Learner:
    """'vsml:ticks=1' -> VSML(ticks=1). Errors name the known learners or the valid options."""
    name, options = split_spec(spec)
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; known learners: {', '.join(sorted(LEARNERS))}")
    return build(LEARNERS[name], options, f"learner {name!r}")


def learner_from_config(config: dict) -> Learner:
    """Inverse of `learner_config` (JSON turns tuples into lists; the dataclass gets them back)."""
    config = dict(config)
    cls = LEARNERS[config.pop("name")]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


__all__ = [
    "LEARNERS", "ClassMean", "Feedback", "Learner", "OnlineSGD", "Sizes", "TaskSpec", "VSML",
    "learner_config", "learner_from_config", "learner_sizes", "make_learner", "step_flops",
]
