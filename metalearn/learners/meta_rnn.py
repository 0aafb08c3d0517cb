"""Meta-RNN (Hochreiter et al. 2001): one LSTM that reads the example and the previous feedback.

The black-box baseline: the LSTM weights are the whole learning algorithm and the LSTM state is all the
task knowledge, so algorithm size dwarfs state size, the opposite of VSML's trade-off. Each step the LSTM
reads [x, error, label], where error and label are the feedback for the previous prediction, and a linear
output layer maps its hidden state to the logits.

Sizes, with D = input size, C = classes and H = hidden units:
  algorithm = 4H(D + 2C + H + 1) [LSTM: input, recurrent, bias] + HC + C [output layer]
  state     = 2H [(h, c)]
On 784 -> 10 with H = 128 that is 478,986 meta-parameters and 256 state floats (the VSML paper's ~479k).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from metalearn.learners.base import Feedback, MeanMerge, PyTree, TaskSpec
from metalearn.learners.lstm import gate_bias, lstm_cell


@dataclasses.dataclass(frozen=True)
class MetaRNN(MeanMerge):
    hidden: int = 128
    name: ClassVar[str] = "meta_rnn"

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        h = self.hidden
        k_in, k_rec, k_out = jax.random.split(key, 3)
        normal = jax.nn.initializers.lecun_normal()
        return {
            "w_in": normal(k_in, (spec.input_size + 2 * spec.num_classes, 4 * h)),
            "w_rec": normal(k_rec, (h, 4 * h)),
            "b": gate_bias(h),
            "w_out": normal(k_out, (h, spec.num_classes)),
            "b_out": jnp.zeros((spec.num_classes,)),
        }

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {"h": jnp.zeros((self.hidden,)), "c": jnp.zeros((self.hidden,))}

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        p = meta_params
        inputs = jnp.concatenate([x, feedback.error, feedback.label])
        h, c = lstm_cell(inputs @ p["w_in"] + state["h"] @ p["w_rec"] + p["b"], state["c"])
        return {"h": h, "c": c}, h @ p["w_out"] + p["b_out"]

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm size, state size) from the docstring's formulas."""
        d, c, h = spec.input_size, spec.num_classes, self.hidden
        return 4 * h * (d + 2 * c + h + 1) + h * c + c, 2 * h
