#!/usr/bin/env python
"""Hand-designed rules a one-layer VSML could run, against nearest class mean: is there headroom above it?

A one-layer VSML's logit for class b is a sum over input units a of what connection (a, b) computes from the
history of x_a and of b's label or error, so the rules within its reach are additive over input units. This
screens such rules on 100-step episodes to see which, if any, beats class mean (the rule issue 18's learned
algorithm must beat), all on inputs standardized over all units as `vsml:standardize_over=all` sees them:

- `novelty k`: unseen classes score k ||x||^2 (a learned "new class" guess) instead of ranking last;
- `shrink l`: class means shrunk towards the episode mean, sums / (count + l);
- `naive Bayes s`: per-class, per-unit Gaussians, variances shrunk towards 1 with s pseudo-counts;
- `+ SGD t, lr`: class mean's score / t plus a linear layer trained online on the error;
- `tanh`: class mean of tanh of each input;
- `per example`: each input standardized over its own units (`vsml:standardize_over=example`), not additive
  over the raw units but a fixed preprocessing in front of an additive rule.

    python bench/local_rules.py                                   # MNIST 7x7 validation (choose here)
    python bench/local_rules.py --task fashion_mnist:resize=7 --split test --out bench/results/local_rules_fashion.json

Whole-episode online accuracy with a 95% interval over episodes, identical episodes for every rule.
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
class LocalRule(ClassMean):
    """Class mean's running sums and counts on standardized inputs, scored by one of the variants above."""

    per_example: bool = False
    transform: str = "id"
    novelty: float | None = None  # None: unseen classes rank below every seen one, as in the baseline
    shrink: float = 0.0
    bayes: float | None = None
    sgd: tuple[float, float] | None = None  # (temperature, learning rate)

    def init_state(self, meta_params: PyTree, key: jax.Array, spec: TaskSpec) -> PyTree:
        shape = (spec.num_classes, spec.input_size)
        return {**super().init_state(meta_params, key, spec), "x_moments": moments.init(spec.input_size),
                "squares": jnp.zeros(shape), "w": jnp.zeros(shape), "p_prev": jnp.zeros((spec.num_classes,))}

    def step(self, meta_params: PyTree, state: PyTree, x: jax.Array, feedback: Feedback):
        stats = moments.update(state["x_moments"], x)
        seen = moments.standardize_example(x) if self.per_example else moments.standardize(stats, x, over_all=True)
        seen = jnp.tanh(seen) if self.transform == "tanh" else seen
        label, x_prev = feedback.label, state["x_prev"]
        sums, counts = state["sums"] + jnp.outer(label, x_prev), state["counts"] + label
        squares = state["squares"] + jnp.outer(label, x_prev**2)
        n = counts[:, None]
        means = sums / jnp.maximum(n + self.shrink, 1e-9) if self.shrink else sums / jnp.maximum(n, 1.0)
        if self.bayes is None:
            score = jnp.sum(2 * seen * means - means**2, -1)
        else:
            var = (jnp.maximum(squares / jnp.maximum(n, 1.0) - means**2, 0.0) * n + self.bayes) / (n + self.bayes)
            score = jnp.sum(-((seen - means) ** 2) / var - jnp.log(var), -1)
        w = state["w"]
        if self.sgd is not None:
            temperature, lr = self.sgd
            error = jnp.where(jnp.sum(label) > 0, state["p_prev"] - label, 0.0)
            w = w - lr * jnp.outer(error, x_prev)
            score = jnp.where(counts > 0, score, 0.0) / temperature + w @ seen
        if self.novelty is not None:
            logits = jnp.where(counts > 0, score, self.novelty * jnp.sum(seen**2))
        elif self.sgd is not None:
            logits = score
        else:
            logits = self.unseen_below(score, counts > 0)
        new = {"sums": sums, "counts": counts, "x_prev": seen, "x_moments": stats, "squares": squares, "w": w,
               "p_prev": jax.nn.softmax(logits)}
        return new, logits


RULES = {
    "class mean, raw inputs (the baseline)": ClassMean(),
    "class mean": LocalRule(),
    **{f"novelty {k}": LocalRule(novelty=k) for k in (-0.5, 0.0, 0.2, 0.4)},
    **{f"shrink {lam}": LocalRule(shrink=lam) for lam in (1.0, 3.0)},
    "novelty 0.2, shrink 1": LocalRule(novelty=0.2, shrink=1.0),
    **{f"naive Bayes {s}": LocalRule(bayes=s) for s in (3.0, 10.0, 30.0)},
    **{f"+ SGD {t}, {lr}": LocalRule(sgd=(t, lr)) for t, lr in ((1.0, 0.01), (3.0, 0.003), (10.0, 0.03))},
    "tanh": LocalRule(transform="tanh"),
    "per example": LocalRule(per_example=True),
    "per example, tanh": LocalRule(per_example=True, transform="tanh"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="mnist:resize=7")
    parser.add_argument("--split", choices=("validation", "test"), default="validation")
    parser.add_argument("--episodes", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "local_rules.json")
    args = parser.parse_args()
    task = getattr(load_task(args.task), args.split)
    results = {"task": args.task, "split": args.split, "episodes": args.episodes, "episode_length": 100,
               "score": "whole-episode online accuracy", "rows": {}}
    for name, rule in RULES.items():
        result = summary(evaluate(rule, {}, task, jax.random.key(0), args.episodes, 100))
        results["rows"][name] = {"acc": result["acc"], "acc_ci": result["acc_ci"]}
        print(f"{name:<40} {result['acc']:.3f} ± {result['acc_ci']:.3f}", flush=True)
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
