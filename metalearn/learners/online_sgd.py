"""Online SGD on a linear softmax model: the hand-designed reference line.

The feedback error softmax(logits) - onehot(label) is exactly the gradient of the cross-entropy with
respect to the logits, so one SGD step on the previous example is an outer product with the stored input.
No meta-parameters; the state is the linear model plus the previous input.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax.numpy as jnp

from metalearn.learners.base import Feedback, MeanMerge, PyTree, TaskSpec


@dataclasses.dataclass(frozen=True)
class OnlineSGD(MeanMerge):
    lr: float = 0.1
    name: ClassVar[str] = "sgd"

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm, state): no meta-parameters; weights D x C, bias C and the previous input D."""
        d, c = spec.input_size, spec.num_classes
        return 0, d * c + c + d

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {}

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {
            "w": jnp.zeros((spec.input_size, spec.num_classes)),
            "b": jnp.zeros((spec.num_classes,)),
            "x_prev": jnp.zeros((spec.input_size,)),
        }

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        w = state["w"] - self.lr * jnp.outer(state["x_prev"], feedback.error)
        b = state["b"] - self.lr * feedback.error
        return {"w": w, "b": b, "x_prev": x}, x @ w + b
