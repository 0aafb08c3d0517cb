"""k-nearest neighbours: store every labelled example, predict by vote of the k closest.

The other extreme of the algorithm/state trade-off: no meta-parameters and no training, all knowledge in
a state that grows with the number of examples. Each labelled feedback stores the previous input and its
label in a buffer of `capacity` slots; past that the oldest example is overwritten. The inner loop does
not tell `init_state` the episode length, so users set `capacity` to it (the default 100 matches 100-step
episodes); the state size grows with it, and that is the point.

Prediction: squared Euclidean distance to every stored example; each of the k nearest casts one vote for
its label, and a bonus below one vote in total favours nearer ranks, so ties go to the nearer neighbours.
The logits are the votes (at most k + 1/2): finite, and all equal while nothing is stored.

Sizes, with D = input size and N = capacity:
  algorithm = 0
  state     = N D [inputs] + N [labels] + 1 [count] + D [previous input]
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from metalearn.learners.base import Feedback, PyTree, TaskSpec


@dataclasses.dataclass(frozen=True)
class KNN:
    k: int = 1
    capacity: int = 100
    name: ClassVar[str] = "knn"
    mergeable: ClassVar[bool] = False  # averaging stored examples over an inner batch would destroy them

    def __post_init__(self):
        if self.capacity < 1:
            raise ValueError("knn: capacity must be positive (set it to the episode length)")
        if not 1 <= self.k <= self.capacity:
            raise ValueError("knn: k must be between 1 and capacity")

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {}

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {
            "xs": jnp.zeros((self.capacity, spec.input_size)),
            "labels": jnp.zeros((self.capacity,), jnp.int32),
            "count": jnp.zeros((), jnp.int32),
            "x_prev": jnp.zeros((spec.input_size,)),
        }

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        has_label = jnp.any(feedback.label != 0)
        slot = state["count"] % self.capacity
        xs = jnp.where(has_label, state["xs"].at[slot].set(state["x_prev"]), state["xs"])
        labels = jnp.where(has_label, state["labels"].at[slot].set(jnp.argmax(feedback.label)), state["labels"])
        count = state["count"] + has_label.astype(jnp.int32)

        valid = jnp.arange(self.capacity) < count
        dist = jnp.where(valid, jnp.sum((xs - x) ** 2, axis=-1), jnp.inf)
        _, nearest = jax.lax.top_k(-dist, self.k)
        rank_bonus = (self.k - jnp.arange(self.k)) / (self.k * (self.k + 1))  # sums to 1/2
        weights = jnp.where(valid[nearest], 1.0 + rank_bonus, 0.0)
        logits = weights @ jax.nn.one_hot(labels[nearest], feedback.label.shape[-1])
        return {"xs": xs, "labels": labels, "count": count, "x_prev": x}, logits

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm size, state size) from the docstring's formulas."""
        d, n = spec.input_size, self.capacity
        return 0, n * d + n + 1 + d
