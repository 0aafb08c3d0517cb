"""Outer optimizers: what improves the meta-parameters from episode fitness (`base.OuterOptimizer`).

A new optimizer is one module with a config dataclass (`name`, `build`, `wrap`, `check`, `resolve`) and one
entry here.
"""

from __future__ import annotations

import dataclasses

from metalearn.outer.backprop import BackpropConfig
from metalearn.outer.base import AXIS, FitnessFn, OuterConfig, OuterMetrics, OuterOptimizer, OuterState
from metalearn.outer.es import ESConfig

OUTER: dict[str, type] = {cls.name: cls for cls in (ESConfig, BackpropConfig)}


def outer_fields(name: str) -> set[str]:
    """The settings of the outer optimizer called `name`."""
    if name not in OUTER:
        raise ValueError(f"unknown outer optimizer {name!r}; known: {', '.join(sorted(OUTER))}")
    return {f.name for f in dataclasses.fields(OUTER[name])}


__all__ = ["AXIS", "OUTER", "BackpropConfig", "ESConfig", "FitnessFn", "OuterConfig", "OuterMetrics",
           "OuterOptimizer", "OuterState", "outer_fields"]
