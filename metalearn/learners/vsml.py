"""VSML: every weight of a dense layer replaced by a tiny LSTM whose parameters all weights share.

Kirsch & Schmidhuber 2021. Connection (a, b) of a layer with A inputs and B outputs holds an LSTM state
(h, c) of `lstm_size` floats each. All connections (of all layers) share one LSTM and two linear message
heads: these are the meta-parameters, the *algorithm*. Connections talk to neighbours through messages of
`msg_size` channels:

- forward: connection (a, b) reads the forward message of its input unit a; unit b's outgoing forward
  message is the mean over a of `fwd_head(h_ab)`. The network input x_a enters channel 0; the logits are
  channel 0 of the last layer's output, bounded by `bound * tanh(. / bound)`.
- backward: connection (a, b) reads the backward message of its output unit b; unit a's outgoing backward
  message is the mean over b of `bwd_head(h_ab)`. The output layer's backward message carries the error
  (softmax - onehot) in channel 0 and, if `use_label`, the one-hot label in channel 1.

A step first runs the backward pass for the previous prediction (layers in reverse, each reading the
forward message it saw then, kept in the state), then the forward pass for the new input; each layer
update is `ticks` LSTM micro-ticks.

`per_layer` gives every layer its own parameters; `backward=False` keeps the error in the output layer
(no backward messages between layers, the ablation of VSML's backward pass).

Sizes, with N = lstm_size, m = msg_size and layer widths d_0 .. d_L:
  algorithm = 4N(2m + N + 1)  [LSTM]  + 2(Nm + m)  [heads]  + 2N  [initial state], times L if per_layer
  state     = sum_l d_{l-1} d_l 2N  [LSTM states]  + sum_l d_{l-1} m  [remembered forward messages]

Structure exploited for speed: the LSTM input projection of [fwd_a; bwd_b] splits into a per-input term
(A x 4N) and a per-output term (B x 4N), broadcast over the (A, B) grid; only h @ W_h is per connection.
The heads are linear, so the mean over connections is taken before projecting.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from metalearn.learners.base import Feedback, MeanMerge, PyTree, TaskSpec
from metalearn.learners.lstm import gate_bias, gate_scale, lstm_cell


@dataclasses.dataclass(frozen=True)
class VSML(MeanMerge):
    lstm_size: int = 16
    msg_size: int = 8
    hidden: tuple[int, ...] = ()  # hidden layer widths; () is a single dense layer
    ticks: int = 2
    bound: float = 100.0
    use_label: bool = True
    init_noise: float = 0.1  # std of the per-connection perturbation of the learned initial state
    per_layer: bool = False  # one set of LSTM and message parameters per layer instead of one for all
    backward: bool = True  # pass backward messages between layers (False: only the output layer sees errors)
    name: ClassVar[str] = "vsml"
    # Inner batches average the LSTM states and keep each copy's remembered forward messages. (The reference
    # code, vsml-neurips2021 models.py `_merge_layer_states`, averages only the first half of every LSTM
    # state vector and keeps the other half per copy.)
    per_example: ClassVar[tuple[str, ...]] = ("fwd_in",)

    def __post_init__(self):
        if self.msg_size < 2:
            raise ValueError("vsml: msg_size must be at least 2 (channel 0 error/value, channel 1 label)")
        if self.ticks < 1:
            raise ValueError("vsml: ticks must be at least 1")

    def widths(self, spec: TaskSpec) -> tuple[int, ...]:
        return (spec.input_size, *self.hidden, spec.num_classes)

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        if self.per_layer:
            return [self._shared_params(k) for k in jax.random.split(key, len(self.widths(spec)) - 1)]
        return self._shared_params(key)

    def _layer_params(self, meta_params: PyTree, layer: int) -> PyTree:
        return meta_params[layer] if self.per_layer else meta_params

    def _shared_params(self, key: chex.PRNGKey) -> PyTree:
        n, m = self.lstm_size, self.msg_size
        k = jax.random.split(key, 5)
        normal = jax.nn.initializers.lecun_normal()
        return {
            "w_fwd": normal(k[0], (m, 4 * n)),
            "w_bwd": normal(k[1], (m, 4 * n)),
            "w_h": normal(k[2], (n, 4 * n)),
            "b": gate_bias(n),
            "fwd_head": normal(k[3], (n, m)),
            "fwd_head_b": jnp.zeros((m,)),
            "bwd_head": normal(k[4], (n, m)),
            "bwd_head_b": jnp.zeros((m,)),
            "init_h": jnp.zeros((n,)),
            "init_c": jnp.zeros((n,)),
        }

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        widths = self.widths(spec)
        layers = []
        keys = jax.random.split(key, len(widths) - 1)
        for l, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            kh, kc = jax.random.split(keys[l])
            p, shape = self._layer_params(meta_params, l), (a, b, self.lstm_size)
            layers.append(
                {
                    "h": p["init_h"] + self.init_noise * jax.random.normal(kh, shape),
                    "c": p["init_c"] + self.init_noise * jax.random.normal(kc, shape),
                    "fwd_in": jnp.zeros((a, self.msg_size)),
                }
            )
        return layers

    def _update(self, p: PyTree, layer: PyTree, fwd_in: chex.Array, bwd_in: chex.Array | None) -> PyTree:
        """`ticks` LSTM updates of every connection of one layer under fixed incoming messages.

        The cell's gate factors (`lstm.gate_scale`) are folded into the shared, small weights, so the
        per-connection work is one tanh over the 4N pre-activations (`prescaled`)."""
        scale = gate_scale(self.lstm_size)
        drive = (fwd_in @ (p["w_fwd"] * scale))[:, None, :] + p["b"] * scale  # [A, 1, 4N]
        if bwd_in is not None:
            drive = drive + (bwd_in @ (p["w_bwd"] * scale))[None, :, :]  # [A, B, 4N]
        w_h = p["w_h"] * scale
        h, c = layer["h"], layer["c"]
        for _ in range(self.ticks):
            h, c = lstm_cell(drive + h @ w_h, c, prescaled=True)
        return {**layer, "h": h, "c": c}

    def _backward(self, p: PyTree, layers: list, feedback: Feedback) -> list:
        msg = jnp.zeros((feedback.error.shape[-1], self.msg_size)).at[:, 0].set(feedback.error)
        if self.use_label:
            msg = msg.at[:, 1].set(feedback.label)
        new_layers = list(layers)
        for l in reversed(range(len(layers)) if self.backward else [len(layers) - 1]):
            pl = self._layer_params(p, l)
            new_layers[l] = self._update(pl, layers[l], layers[l]["fwd_in"], msg)
            msg = new_layers[l]["h"].mean(axis=1) @ pl["bwd_head"] + pl["bwd_head_b"]  # [A, m]
        return new_layers

    def _forward(self, p: PyTree, layers: list, x: chex.Array) -> tuple[list, chex.Array]:
        msg = jnp.zeros((x.shape[-1], self.msg_size)).at[:, 0].set(x)
        new_layers = []
        for l, layer in enumerate(layers):
            pl = self._layer_params(p, l)
            layer = self._update(pl, {**layer, "fwd_in": msg}, msg, None)
            new_layers.append(layer)
            msg = layer["h"].mean(axis=0) @ pl["fwd_head"] + pl["fwd_head_b"]  # [B, m]
        logits = self.bound * jnp.tanh(msg[:, 0] / self.bound)
        return new_layers, logits

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        state = self._backward(meta_params, state, feedback)
        return self._forward(meta_params, state, x)

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm size, state size) from the docstring's formulas."""
        n, m, w = self.lstm_size, self.msg_size, self.widths(spec)
        algorithm = (4 * n * (2 * m + n + 1) + 2 * (n * m + m) + 2 * n) * (len(w) - 1 if self.per_layer else 1)
        state = sum(a * b * 2 * n + a * m for a, b in zip(w[:-1], w[1:]))
        return algorithm, state
