"""LowRankRNN: one large LSTM whose state size and algorithm size are independent knobs.

The meta-RNN and VSML sit at opposite ends of the algorithm-vs-state trade-off: a meta-RNN's ~479k
weights drive 256 state floats, VSML's ~2.4k weights drive ~251k. This family moves between them. The
state is always an LSTM of `units` cells (state = 2 * units floats: h and c), while its big weight
matrices are *generated* from few meta-parameters, in two ways that can be combined:

- rank r > 0: every weight matrix W (rows x cols) is a product U V with U (rows x r) and V (r x cols),
  applied as (x @ U) @ V, so no rows x cols matrix (in particular no units x units one) is ever built.
- groups g > 0: the units are g groups of M = units / g members, and every member of a group shares
  that group's weights (VSML-like tying). The network is then M copies of a g-cell LSTM with shared
  weights, coupled through the mean over members: member m's gates are
      x_in W_in + h_m W_rec + mean_m'(h_m') W_mix + b,
  and logits = mean_m(h_m) W_out + b_out. Because the input and mean-field terms are the same for all
  members, members differ only by their initial state, h, c ~ init_noise * N(0, 1), drawn per task.

Each step reads x_in = [x, error, label] (the previous prediction's feedback), as in the meta-RNN. With
rank=0, groups=0 and init_noise=0 the network is exactly MetaRNN(hidden=units).

Sizes, with D = input size, C = classes, I = D + 2C, n = g if tied else units, and
mat(a, b) = a*b if r = 0 else r*(a + b):
  algorithm = mat(I, 4n) [input] + mat(n, 4n) [recurrent] + [g > 0] mat(n, 4n) [mean-field]
              + 4n [gate bias] + mat(n, C) + C [output layer]
  state     = 2 * units
Written out:
  dense            4u(I + u + 1) + uC + C       low-rank          r(I + 10u + C) + 4u + C
  tied             4g(I + 2g + 1) + gC + C      tied and low-rank r(I + 15g + C) + 4g + C
On 784 -> 10 (I = 804) that spans algorithm/state from ~2e3 (units=128, dense: the meta-RNN) through
~1 (units=512, groups=16, rank=1: 1,128 / 1,024) to ~7e-3 (units=65536, groups=4, rank=1: 900 / 131,072).
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
    groups: int = 0  # units share weights in this many groups; 0 = every unit has its own weights
    init_noise: float = 0.1  # std of the random initial (h, c): what tells tied members apart
    name: ClassVar[str] = "lowrank"

    def __post_init__(self):
        if self.units < 1 or self.rank < 0 or self.groups < 0 or self.init_noise < 0:
            raise ValueError(f"lowrank: units must be >= 1 and rank, groups, init_noise >= 0 (got {self})")
        if self.groups and self.units % self.groups:
            raise ValueError(f"lowrank: groups={self.groups} must divide units={self.units}")
        if self.rank > self.distinct:
            raise ValueError(f"lowrank: rank={self.rank} exceeds the {self.distinct} distinct units "
                             f"({'groups' if self.groups else 'units'}); use rank=0 for full matrices")
        if self.groups and self.init_noise == 0:
            raise ValueError("lowrank: groups need init_noise > 0, or the members of a group stay identical")

    @property
    def distinct(self) -> int:
        """n: units with their own weights (the weight matrices are n wide)."""
        return self.groups or self.units

    @property
    def members(self) -> int:
        """M: copies of the n-cell LSTM (1 when untied)."""
        return self.units // self.distinct

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
        n, c = self.distinct, spec.num_classes
        k_in, k_rec, k_out, k_mix = jax.random.split(key, 4)
        params = {
            "w_in": self._matrix(k_in, spec.input_size + 2 * c, 4 * n),
            "w_rec": self._matrix(k_rec, n, 4 * n),
            "b": gate_bias(n),
            "w_out": self._matrix(k_out, n, c),
            "b_out": jnp.zeros((c,)),
        }
        if self.groups:
            params["w_mix"] = self._matrix(k_mix, n, 4 * n)
        return params

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        k_h, k_c = jax.random.split(key)
        shape = (self.members, self.distinct)
        return {"h": self.init_noise * jax.random.normal(k_h, shape),
                "c": self.init_noise * jax.random.normal(k_c, shape)}

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        p = meta_params
        inputs = jnp.concatenate([x, feedback.error, feedback.label])
        shared = self._mul(inputs, p["w_in"]) + p["b"]  # [4n], broadcast over the members
        if self.groups:
            shared = shared + self._mul(state["h"].mean(axis=0), p["w_mix"])
        h, c = lstm_cell(shared + self._mul(state["h"], p["w_rec"]), state["c"])  # each [M, n]
        return {"h": h, "c": c}, self._mul(h.mean(axis=0), p["w_out"]) + p["b_out"]

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm size, state size) from the docstring's formulas."""
        n, c, r = self.distinct, spec.num_classes, self.rank
        mat = lambda a, b: r * (a + b) if r else a * b  # noqa: E731
        algorithm = (mat(spec.input_size + 2 * c, 4 * n) + (2 if self.groups else 1) * mat(n, 4 * n)
                     + 4 * n + mat(n, c) + c)
        return algorithm, 2 * self.units
