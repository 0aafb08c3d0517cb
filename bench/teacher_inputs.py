#!/usr/bin/env python
"""Nearest class mean on the inputs a standardized VSML's connections see: how well a connection-level
imitation (`--teacher-level connections`) can do at best, measured on validation episodes only.

    python bench/teacher_inputs.py          # mnist:resize=7, writes bench/results/teacher_inputs.json

Rows: the class-mean baseline on raw inputs; on inputs standardized per input unit (`vsml:standardize=true`),
over all units (`standardize_over=all`) and per example over its own units (`standardize_over=example`),
each with unseen classes ranked below the seen ones (the baseline's rule) and at 0 (the sum of
`ClassMean.connection_terms`, the imitation's target); and per unit with the terms weighted by each unit's
variance (what `input_weights=variance` makes of a faithful imitation).
Whole-episode online accuracy with a 95% interval over episodes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from metalearn.learners import moments  # noqa: E402
from metalearn.learners.base import Feedback, PyTree, TaskSpec  # noqa: E402
from metalearn.learners.class_mean import ClassMean  # noqa: E402
from metalearn.rollout.evaluation import evaluate, summary  # noqa: E402
from tasks.registry import load_task  # noqa: E402


@dataclasses.dataclass(frozen=True)
class ScaledClassMean(ClassMean):
    """Class mean on inputs standardized as VSML standardizes them ("unit", "all" or "example"); `terms`: the logits
    are the summed connection terms, so unseen classes score 0 instead of below every seen class, and with
    `weighted` each unit's terms count by its variance over the units' mean variance."""

    over: str = "unit"
    terms: bool = False
    weighted: bool = False

    def init_state(self, meta_params: PyTree, key: jax.Array, spec: TaskSpec) -> PyTree:
        return {**super().init_state(meta_params, key, spec), "x_moments": moments.init(spec.input_size)}

    def step(self, meta_params: PyTree, state: PyTree, x: jax.Array, feedback: Feedback):
        stats = moments.update(state["x_moments"], x)
        seen = (moments.standardize_example(x) if self.over == "example"
                else moments.standardize(stats, x, over_all=self.over == "all"))
        inner, logits = super().step(meta_params, {k: v for k, v in state.items() if k != "x_moments"}, seen, feedback)
        if self.terms:
            weights = moments.unit_weights(stats) if self.weighted else 1.0
            logits = jnp.sum(weights * self.connection_terms(inner, seen), axis=-1)
        return {**inner, "x_moments": stats}, logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="mnist:resize=7", help="a meta-training task; its validation split")
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "teacher_inputs.json")
    args = parser.parse_args()
    task = load_task(args.task).validation
    rows = {"raw, unseen below (the class_mean baseline)": ClassMean()}
    for over in ("unit", "all", "example"):
        rows[f"standardized over {over}, unseen below"] = ScaledClassMean(over=over)
        rows[f"standardized over {over}, unseen at 0 (the imitation target)"] = ScaledClassMean(over=over, terms=True)
    rows["standardized over unit, terms weighted by variance"] = ScaledClassMean(terms=True, weighted=True)
    results = {"task": args.task, "split": "validation", "episodes": args.episodes,
               "episode_length": args.episode_length, "score": "whole-episode online accuracy", "rows": {}}
    for name, learner in rows.items():
        result = summary(evaluate(learner, {}, task, jax.random.key(0), args.episodes, args.episode_length))
        results["rows"][name] = {"acc": result["acc"], "acc_ci": result["acc_ci"]}
        print(f"{name:<60} {result['acc']:.3f} ± {result['acc_ci']:.3f}")
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
