"""Streaming linear discriminant analysis (Hayes & Kanan 2020): a hand-designed one-pass baseline.

Per labelled example it updates the running mean of that example's class and one covariance shared by all
classes; it predicts with the LDA rule on the shrunk covariance, Λ = (Σ + λI)^-1:
    logits_c = μ_c·Λx - ½ μ_c·Λμ_c      (equal class priors)
The scatter update is Welford's per class, S += n_c/(n_c+1) (x - μ_c)(x - μ_c)ᵀ with the mean before the
update, so after any order of the same examples S / N is exactly the pooled within-class covariance of
batch LDA: a class-sorted stream costs it nothing. Unseen classes rank below every seen one.

Sizes, with D = input size and C = classes:
  algorithm = 0
  state     = C D [means] + C [counts] + D D [scatter] + D [previous input]
Effective state: the scatter is symmetric, so D(D - 1)/2 of its floats repeat others (316,354 distinct
numbers of 623,290 on 784 -> 10).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax.numpy as jnp
import jax.scipy.linalg

from metalearn.learners.base import Feedback, NoMerge, PyTree, TaskSpec


@dataclasses.dataclass(frozen=True)
class StreamingLDA(NoMerge):  # averaging copies' statistics is not the statistics of their union
    shrinkage: float = 1e-2  # λ added to the covariance's diagonal before it is inverted
    name: ClassVar[str] = "slda"

    def __post_init__(self):
        if not self.shrinkage > 0:
            raise ValueError(f"slda: shrinkage must be positive (it keeps the covariance invertible), "
                             f"got {self.shrinkage}")

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm, state) from the docstring's formulas."""
        d, c = spec.input_size, spec.num_classes
        return 0, c * d + c + d * d + d

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {}

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        d, c = spec.input_size, spec.num_classes
        return {"means": jnp.zeros((c, d)), "counts": jnp.zeros((c,)), "scatter": jnp.zeros((d, d)),
                "x_prev": jnp.zeros((d,))}

    def absorb(self, state: PyTree, label: chex.Array) -> PyTree:
        """Add the previous input with one-hot `label` (all zeros: no change) to the statistics."""
        n = label @ state["counts"]  # examples of this class so far (0 when there is no label)
        mean = label @ state["means"]
        delta = state["x_prev"] - mean
        weight = jnp.sum(label) * n / (n + 1.0)
        scatter = state["scatter"] + weight * jnp.outer(delta, delta)
        means = state["means"] + jnp.outer(label, delta / (n + 1.0))
        return {**state, "means": means, "counts": state["counts"] + label, "scatter": scatter}

    def predict(self, state: PyTree, x: chex.Array) -> chex.Array:
        d = x.shape[-1]
        cov = state["scatter"] / jnp.maximum(jnp.sum(state["counts"]), 1.0) + self.shrinkage * jnp.eye(d)
        precision_means = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(cov), state["means"].T).T
        score = precision_means @ x - 0.5 * jnp.sum(precision_means * state["means"], axis=-1)
        seen = state["counts"] > 0
        floor = jnp.min(jnp.where(seen, score, jnp.inf))
        return jnp.where(seen, score, jnp.where(jnp.any(seen), floor - 1.0, 0.0))

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        state = self.absorb(state, feedback.label)
        return {**state, "x_prev": x}, self.predict(state, x)
