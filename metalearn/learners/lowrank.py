"""LowRankRNN: one large LSTM with low-rank weight matrices, so its state can grow faster than its algorithm.

The meta-RNN and VSML sit at opposite ends of the algorithm-vs-state trade-off: a meta-RNN's ~479k
weights drive 256 state floats, VSML's ~2.4k weights drive ~257k. This family moves from the meta-RNN's
end towards VSML's. The state is an LSTM of `units` cells (2 * units floats: h and c, all usable, since
every unit has its own weights), and with rank r > 0 every weight matrix W (rows x cols) is a product U V
with U (rows x r) and V (r x cols), applied as (x @ U) @ V, so no rows x cols matrix (in particular no
units x units one) is ever built.

Each step reads x_in = [x, error, label] (the previous prediction's feedback), as in the meta-RNN. With
rank=0 the network is exactly MetaRNN(hidden=units).

Sizes, with D = input size, C = classes, I = D + 2C, u = units and mat(a, b) = a*b if r = 0 else r*(a + b):
  algorithm = mat(I, 4u) [input] + mat(u, 4u) [recurrent] + 4u [gate bias] + mat(u, C) + C [output layer]
            = 4u(I + u + 1) + uC + C (dense), r(I + 10u + C) + 4u + C (low-rank)
  state     = 2u
At rank r > 0 each unit adds 10r + 4 meta-parameters and 2 state floats, so algorithm/state stays above
5r + 2. On 784 -> 10 (`learner_sizes`) it spans 1,871 (units=128, rank=0: the meta-RNN) through 107
(units=256, rank=16: 55,018 / 512) to 7.0 (units=65536, rank=1: 918,328 / 131,072); below that, VSML's
`groups` spans 0.0094 to 74.
A tied variant (`groups`: units sharing weights within groups) was withdrawn: the members of a group
shared their input drive and readout, so its effective state was ~2 x groups floats, not 2 x units.
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
class LowRankRNN(MeanMerge):
    units: int = 256  # LSTM cells: the state is 2 * units floats
    rank: int = 4  # rank of every weight matrix; 0 = full matrices
    name: ClassVar[str] = "lowrank"

    def __post_init__(self):
        if self.units < 1 or self.rank < 0:
            raise ValueError(f"lowrank: units must be >= 1 and rank >= 0 (got {self})")
        if self.rank > self.units:
            raise ValueError(f"lowrank: rank={self.rank} exceeds units={self.units}; use rank=0 for full matrices")

    def _matrix(self, key: chex.PRNGKey, rows: int, cols: int) -> PyTree:
        """A rows x cols weight, full or as factors whose product has lecun_normal's variance 1/rows."""
        normal = jax.nn.initializers.lecun_normal()
        if not self.rank:
            return normal(key, (rows, cols))
        k_u, k_v = jax.random.split(key)
        return {"u": normal(k_u, (rows, self.rank)), "v": normal(k_v, (self.rank, cols))}

    def _mul(self, x: chex.Array, w: PyTree) -> chex.Array:
        return x @ w["u"] @ w["v"] if self.rank else x @ w

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        u, c = self.units, spec.num_classes
        k_in, k_rec, k_out = jax.random.split(key, 3)
        return {
            "w_in": self._matrix(k_in, spec.input_size + 2 * c, 4 * u),
            "w_rec": self._matrix(k_rec, u, 4 * u),
            "b": gate_bias(u),
            "w_out": self._matrix(k_out, u, c),
            "b_out": jnp.zeros((c,)),
        }

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {"h": jnp.zeros((self.units,)), "c": jnp.zeros((self.units,))}

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        p = meta_params
        inputs = jnp.concatenate([x, feedback.error, feedback.label])
        h, c = lstm_cell(self._mul(inputs, p["w_in"]) + self._mul(state["h"], p["w_rec"]) + p["b"], state["c"])
        return {"h": h, "c": c}, self._mul(h, p["w_out"]) + p["b_out"]

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm size, state size) from the docstring's formulas."""
        u, c, r = self.units, spec.num_classes, self.rank
        mat = lambda a, b: r * (a + b) if r else a * b  # noqa: E731
        return mat(spec.input_size + 2 * c, 4 * u) + mat(u, 4 * u) + 4 * u + mat(u, c) + c, 2 * u
