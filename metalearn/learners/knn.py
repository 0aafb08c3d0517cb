"""k-nearest neighbours: store labelled examples, predict by vote of the k closest.

The other extreme of the algorithm/state trade-off: no meta-parameters and no training, all knowledge in
a state that grows with the number of examples. Each labelled feedback stores the previous input and its
label in a buffer of `capacity` slots (default: the episode length, which `init_state` reads off the task
spec, so that every example of an episode is kept). Once it is full, reservoir sampling (Vitter's algorithm R)
decides: the n-th labelled example replaces a uniformly drawn slot with probability capacity / n, so the buffer
is always a uniform sample of everything seen, whatever the order (a class-sorted stream keeps every class,
where overwriting the oldest would keep only the last ones). The state size grows with it, and that is the point.

Prediction: squared Euclidean distance to every stored example; each of the k nearest casts one vote for
its label, and a bonus below one vote in total favours nearer ranks, so ties go to the nearer neighbours.
The logits are the votes (at most k + 1/2): finite, and all equal while nothing is stored.

Sizes, with D = input size and N = capacity:
  algorithm = 0
  state     = N D [inputs] + N [labels] + 1 [count] + 2 [reservoir key] + D [previous input]
Effective state: up to N labelled examples of D + 1 numbers (the labels, count and key are integers, each
counted as one float); the count and key are bookkeeping, and a slot no labelled example has reached holds
nothing (with the default capacity the last slot never fills: an episode's last label never arrives).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from metalearn.learners.base import Feedback, NoMerge, PyTree, TaskSpec


@dataclasses.dataclass(frozen=True)
class KNN(NoMerge):
    k: int = 1
    capacity: int = 0  # stored examples; 0: the episode length
    name: ClassVar[str] = "knn"

    def __post_init__(self):
        if self.capacity < 0:
            raise ValueError("knn: capacity must be positive, or 0 for the episode length")
        if self.k < 1 or (self.capacity and self.k > self.capacity):
            raise ValueError("knn: k must be between 1 and capacity")

    def slots(self, spec: TaskSpec) -> int:
        """The buffer size: `capacity`, or the episode length when it is 0."""
        return self.capacity or spec.episode_length

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {}

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        if self.k > self.slots(spec):
            raise ValueError(f"knn: k={self.k} exceeds the {self.slots(spec)} examples it can store")
        return {
            "xs": jnp.zeros((self.slots(spec), spec.input_size)),
            "labels": jnp.zeros((self.slots(spec),), jnp.int32),
            "count": jnp.zeros((), jnp.int32),
            "key": jax.random.key_data(jax.random.key(jax.random.bits(key, dtype=jnp.uint32))),
            "x_prev": jnp.zeros((spec.input_size,)),
        }

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        has_label = jnp.any(feedback.label != 0)
        slots = state["labels"].shape[0]
        count = state["count"]
        drawn = jax.random.randint(jax.random.fold_in(jax.random.wrap_key_data(state["key"]), count), (), 0,
                                   count + 1)
        slot = jnp.where(count < slots, count, drawn)  # reservoir: keep with probability slots / (n+1)
        store = has_label & (slot < slots)
        slot = jnp.minimum(slot, slots - 1)
        xs = state["xs"].at[slot].set(jnp.where(store, state["x_prev"], state["xs"][slot]))
        labels = state["labels"].at[slot].set(jnp.where(store, jnp.argmax(feedback.label), state["labels"][slot]))
        count = count + has_label.astype(jnp.int32)

        valid = jnp.arange(slots) < count
        dist = jnp.where(valid, jnp.sum((xs - x) ** 2, axis=-1), jnp.inf)
        _, nearest = jax.lax.top_k(-dist, self.k)
        rank_bonus = (self.k - jnp.arange(self.k)) / (self.k * (self.k + 1))  # sums to 1/2
        weights = jnp.where(valid[nearest], 1.0 + rank_bonus, 0.0)
        logits = weights @ jax.nn.one_hot(labels[nearest], feedback.label.shape[-1])
        return {**state, "xs": xs, "labels": labels, "count": count, "x_prev": x}, logits

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm size, state size) from the docstring's formulas."""
        d, n = spec.input_size, self.slots(spec)
        return 0, n * d + n + 1 + 2 + d
