"""Nearest class mean: predict the class whose running mean input is closest. A hand-designed baseline."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax.numpy as jnp

from metalearn.learners.base import Feedback, MeanMerge, PyTree, TaskSpec


@dataclasses.dataclass(frozen=True)
class ClassMean(MeanMerge):
    name: ClassVar[str] = "class_mean"

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm, state): no meta-parameters; per-class sums C x D, counts C and the previous input D."""
        d, c = spec.input_size, spec.num_classes
        return 0, c * d + c + d

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {}

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {
            "sums": jnp.zeros((spec.num_classes, spec.input_size)),
            "counts": jnp.zeros((spec.num_classes,)),
            "x_prev": jnp.zeros((spec.input_size,)),
        }

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        sums = state["sums"] + jnp.outer(feedback.label, state["x_prev"])
        counts = state["counts"] + feedback.label
        seen = counts > 0
        means = sums / jnp.maximum(counts, 1.0)[:, None]
        score = -jnp.sum((means - x) ** 2, axis=-1)
        return {"sums": sums, "counts": counts, "x_prev": x}, self.unseen_below(score, seen)

    @staticmethod
    def unseen_below(score: chex.Array, seen: chex.Array) -> chex.Array:
        """Unseen classes rank just below the worst seen one; with nothing seen all logits are equal."""
        floor = jnp.min(jnp.where(seen, score, jnp.inf))
        return jnp.where(seen, score, jnp.where(jnp.any(seen), floor - 1.0, 0.0))

    @staticmethod
    def connection_terms(state: PyTree, x: chex.Array) -> chex.Array:
        """[C, D]: the logits of the seen classes split over input units, 2 x_d mu_cd - mu_cd^2, whose sum over
        d is -||x - mu_c||^2 + ||x||^2 (the same ranking); 0 for unseen classes. A rule each connection (d, c)
        of a learned layer could run on its own: it needs only x_d and whether the label was c
        (`metalearn/rollout/imitation.py`)."""
        means = state["sums"] / jnp.maximum(state["counts"], 1.0)[:, None]
        return 2 * x * means - means**2
