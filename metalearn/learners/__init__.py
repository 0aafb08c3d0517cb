"""Learners: learned (meta-parameterized) and hand-designed learning algorithms behind one interface."""

from __future__ import annotations

from metalearn.learners.base import (Feedback, Learner, Sizes, TaskSpec, check_task_fits, learner_sizes,
                                     step_flops)
from metalearn.learners.class_mean import ClassMean
from metalearn.learners.knn import KNN
from metalearn.learners.lowrank import LowRankRNN
from metalearn.learners.meta_rnn import MetaRNN
from metalearn.learners.online_adam import OnlineAdam
from metalearn.learners.online_mlp import OnlineMLP
from metalearn.learners.online_sgd import OnlineSGD
from metalearn.learners.slda import StreamingLDA
from metalearn.learners.vsml import VSML
from tasks.spec import build, split_spec

LEARNERS = {cls.name: cls for cls in (VSML, MetaRNN, LowRankRNN, OnlineSGD, OnlineAdam, OnlineMLP, KNN, ClassMean,
                                    StreamingLDA)}


def make_learner(spec: str) -> Learner:
    """'vsml:ticks=1' -> VSML(ticks=1). Errors name the known learners or the valid options."""
    name, options = split_spec(spec)
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; known learners: {', '.join(sorted(LEARNERS))}")
    return build(LEARNERS[name], options, f"learner {name!r}")


__all__ = [
    "KNN", "LEARNERS", "ClassMean", "LowRankRNN", "Feedback", "Learner", "MetaRNN", "OnlineAdam", "OnlineMLP", "OnlineSGD",
    "Sizes", "StreamingLDA", "TaskSpec", "VSML", "check_task_fits",
    "learner_sizes", "make_learner", "step_flops",
]
