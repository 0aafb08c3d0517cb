"""Online Adam on a linear softmax model: the hand-designed line with per-weight adaptive step sizes.

Plain online SGD uses one step size for every weight; Adam rescales each weight's step by running moments
of its gradient, the usual first thing to try when SGD's step size is hard to pick. As in online SGD, the
feedback error softmax(logits) - onehot(label) is the cross-entropy gradient w.r.t. the logits, so the
gradient of the previous prediction is outer(x_prev, error) for the weights and error for the bias.
A zero feedback (no label) skips the update: neither the weights nor Adam's moments and step count move.

Sizes, with D = input size and C = classes (P = DC + C linear parameters):
  algorithm = 0
  state     = P [weights] + 2P [Adam moments] + 1 [step count] + D [previous input] = 3(DC + C) + 1 + D
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp
import optax

from metalearn.learners.base import Feedback, MeanMerge, PyTree, TaskSpec


@dataclasses.dataclass(frozen=True)
class OnlineAdam(MeanMerge):
    lr: float = 0.01
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    name: ClassVar[str] = "adam"

    def _optimizer(self) -> optax.GradientTransformation:
        return optax.adam(self.lr, b1=self.b1, b2=self.b2, eps=self.eps)

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {}

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        params = {"w": jnp.zeros((spec.input_size, spec.num_classes)), "b": jnp.zeros((spec.num_classes,))}
        return {"params": params, "opt": self._optimizer().init(params), "x_prev": jnp.zeros((spec.input_size,))}

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        old = (state["params"], state["opt"])
        grads = {"w": jnp.outer(state["x_prev"], feedback.error), "b": feedback.error}
        updates, opt = self._optimizer().update(grads, state["opt"])
        new = (optax.apply_updates(state["params"], updates), opt)
        has_label = jnp.any(feedback.label != 0)
        params, opt = jax.tree.map(lambda n, o: jnp.where(has_label, n, o), new, old)
        return {"params": params, "opt": opt, "x_prev": x}, x @ params["w"] + params["b"]

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm size, state size) from the docstring's formulas."""
        d, c = spec.input_size, spec.num_classes
        return 0, 3 * (d * c + c) + 1 + d
