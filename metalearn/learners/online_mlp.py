"""Online SGD on a one-hidden-layer tanh network: the hand-designed line with a nonlinear model.

A linear model cannot represent every task; a hidden layer can, at the price of a random initialization
and a slower start. The feedback error softmax(logits) - onehot(label) is the cross-entropy gradient
w.r.t. the logits of the previous prediction, so it is backpropagated (jax.vjp) through the network
evaluated at the stored previous input. A zero error gives a zero gradient: zero feedback changes nothing.
The weights are drawn from the key in `init_state`: they are the learnable state, not meta-parameters.

Sizes, with D = input size, C = classes and H = hidden units:
  algorithm = 0
  state     = DH + H + HC + C [network] + D [previous input]
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from metalearn.learners.base import Feedback, MeanMerge, PyTree, TaskSpec


def _forward(params: PyTree, x: chex.Array) -> chex.Array:
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


@dataclasses.dataclass(frozen=True)
class OnlineMLP(MeanMerge):
    hidden: int = 64
    lr: float = 0.1
    name: ClassVar[str] = "mlp_sgd"

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {}

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        k1, k2 = jax.random.split(key)
        normal = jax.nn.initializers.lecun_normal()
        params = {
            "w1": normal(k1, (spec.input_size, self.hidden)),
            "b1": jnp.zeros((self.hidden,)),
            "w2": normal(k2, (self.hidden, spec.num_classes)),
            "b2": jnp.zeros((spec.num_classes,)),
        }
        return {"params": params, "x_prev": jnp.zeros((spec.input_size,))}

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        _, backprop = jax.vjp(lambda p: _forward(p, state["x_prev"]), state["params"])
        (grads,) = backprop(feedback.error)
        params = jax.tree.map(lambda p, g: p - self.lr * g, state["params"], grads)
        return {"params": params, "x_prev": x}, _forward(params, x)

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm size, state size) from the docstring's formulas."""
        d, c, h = spec.input_size, spec.num_classes, self.hidden
        return 0, d * h + h + h * c + c + d
