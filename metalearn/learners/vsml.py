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

`groups=G` moves the algorithm size at a fixed state: each layer's A x B connections are partitioned into G
groups, each with its own LSTM, message heads and initial state (all groups initialised identically, so
every G starts as the same function). The grid is cut into Gb = gcd(G, B) blocks of output units, then
Ga = G / Gb blocks of input units: G = 1 is VSML, G = B one LSTM per output unit, G = A x B every weight its
own small RNN. G must divide every layer's A x B (any such divisor factors this way). With
`shared_base=true` each group's parameters are a base shared by all groups plus the group's own offset
divided by G (offsets zero at initialisation): the same functions, G + 1 parameter sets. It is the ES
parametrization meant to keep G = 1's estimate of the direction all groups share (a perturbation of the
base moves every group; independent groups split it G ways) while the offsets drift slowly. Measured at
the axis preset's ES budget (docs/axis.md): G = 10 did not leave chance with it either, nor with the
offsets scaled by 1 or 1/sqrt(G), while G = 1 did.

Choices of the reference implementation (louiskirsch/vsml-neurips2021; docs/experiments.md says where each
is in it), as options whose defaults keep this module's own rule:

- `init_rand_proportion=p`: at the start of every episode the first floor(p N) units of each connection's
  cell state c get truncated-normal noise (+-2 standard deviations) scaled by 1/sqrt(A), A the layer's
  inputs; h is not perturbed. It adds to `init_noise`'s perturbation: the reference is
  `init_rand_proportion=0.5,init_noise=0`.
- `use_label=false` is the reference's `feed_label: False`: channel 1 of the error message is zero.
- `gate_init=reference`: the LSTM weights on [fwd; bwd; h] drawn as one truncated normal (+-2) times
  1/sqrt(2m + N) (not rescaled for the truncation), and gate biases of +5 (forget) and -5 (input), which
  is the reference's fixed gate offsets on a bias that starts at 0. Default `lecun`: LeCun-normal per
  matrix, forget bias 1.
- `merge_fraction=f`: an inner batch averages only the first floor(f N) units of every h and c and keeps
  the rest per copy; the reference's rule is f = 0.5, the default 1 averages all.
- `single_pass=true` is the reference's default `backward_pass: False`: one sweep per step from inputs to
  outputs, in which every layer's ticks read its new forward message and its backward message together;
  the output layer's is the feedback on the previous prediction, a hidden layer's the one its successor
  sent in the previous step (errors climb one layer per step). Half the LSTM updates of `single_pass=false` (a
  backward phase, then a forward phase). Not in the reference: `backward=False` with it sends hidden
  layers no backward message.

`standardize=true` (not in the reference) feeds the network each input standardized by the running mean
and variance, per input unit, of the episode's inputs so far, this one included (`moments.py`). With
`standardize_over=all`, one mean and variance over all input units' values instead: still blind to the
inputs' overall scale and offset, and it keeps their relative scales (nearest class mean on MNIST 7x7 loses
6 points on per-unit standardized inputs and none on these; docs/experiments.md, session 13).
`standardize_over=example` standardizes each input vector over its own units instead (no episode
statistics): blind to every example's own scale and offset, and so to the episode's; nearest class mean on
inputs standardized so gains 1.8 points on MNIST 7x7 validation (`bench/teacher_inputs.py`).
`input_weights=variance` (with per-unit `standardize`) keeps the per-unit inputs but averages the first
layer's forward messages over input units weighted by each unit's running variance over the units' mean
variance, which puts the units' relative scales back into the sum: every connection computes on inputs of
one scale, and an input that barely varies (a border pixel) counts for little in the outputs.

Sizes, with N = lstm_size, m = msg_size and layer widths d_0 .. d_L:
  algorithm = (4N(2m + N + 1)  [LSTM]  + 2(Nm + m)  [heads]  + 2N  [initial state]) x G (G + 1 with
              shared_base), x L if per_layer
  state     = sum_l d_{l-1} d_l 2N  [LSTM states]  + sum_l d_{l-1} m  [remembered forward messages]
              (single_pass: sum_{l<L} d_l m [backward messages to hidden layers] instead, none without
              backward)  + 2 d_0 + 1 [input statistics, with standardize over unit or all]
Effective state: the remembered forward messages only record the previous forward pass for the next
backward one (in the first layer: the previous input in channel 0, zeros in the other m - 1), so what a
task teaches VSML lives in the LSTM states (250,880 of the 257,152 floats by default on 784 -> 10).

Structure exploited for speed: the LSTM input projection of [fwd_a; bwd_b] splits into a per-input term
(A x Gb x 4N) and a per-output term (Ga x B x 4N), broadcast over the (A, B) grid; only h @ W_h is per
connection. The heads are linear, so the mean over a group's connections is taken before projecting.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from metalearn.learners import moments
from metalearn.learners.base import Feedback, MeanMerge, PyTree, TaskSpec, average_states
from metalearn.learners.lstm import gate_bias, gate_scale, lstm_cell

GATE_INITS = ("lecun", "reference")


def _reference_normal(key: chex.PRNGKey, shape: tuple[int, ...], fan_in: int) -> chex.Array:
    """The reference's initializer: a truncated normal (+-2) times 1/sqrt(fan_in), not rescaled for the
    truncation (so its standard deviation is 0.88 / sqrt(fan_in))."""
    return jax.random.truncated_normal(key, -2.0, 2.0, shape) / math.sqrt(fan_in)


def _group_einsum(spec: str, x: chex.Array, w: chex.Array) -> chex.Array:
    """einsum(spec, x, w) where w's axes but its last two are group axes. With a single group the group
    axes are dropped and the plain product is taken: XLA's CPU backend runs it faster than the same product
    with size-1 batch axes (and lays out its result without extra copies)."""
    inputs, out = spec.split("->")
    x_spec, w_spec = inputs.split(",")
    groups = w_spec[:-2]
    if w.size != w.shape[-1] * w.shape[-2]:
        return jnp.einsum(spec, x, w)
    strip = lambda s: "".join(ch for ch in s if ch not in groups)  # noqa: E731
    x = x.reshape([d for ch, d in zip(x_spec, x.shape) if ch not in groups])
    y = jnp.einsum(f"{strip(x_spec)},{strip(w_spec)}->{strip(out)}", x, w.reshape(w.shape[-2:]))
    return y.reshape([1 if ch in groups else y.shape[strip(out).index(ch)] for ch in out])


def _to_groups(x: chex.Array, ga: int, gb: int) -> chex.Array:
    """[A, B, K] per connection -> [G, A/Ga, B/Gb, K], the connections laid out group by group."""
    a, b, k = x.shape
    return x.reshape(ga, a // ga, gb, b // gb, k).swapaxes(1, 2).reshape(ga * gb, a // ga, b // gb, k)


def _to_grid(x: chex.Array, ga: int, gb: int) -> chex.Array:
    """The inverse of `_to_groups`: [G, A/Ga, B/Gb, K] -> [A, B, K]."""
    _, a, b, k = x.shape
    return x.reshape(ga, gb, a, b, k).swapaxes(1, 2).reshape(ga * a, gb * b, k)


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
    groups: int = 1  # connections per layer split into this many groups with their own parameters
    shared_base: bool = False  # groups' parameters = a shared base + per-group offsets (zero at init)
    init_rand_proportion: float = 0.0  # part of each cell state drawn at random per episode (reference: 0.5)
    gate_init: str = "lecun"  # or "reference"
    merge_fraction: float = 1.0  # part of each LSTM state an inner batch averages (reference: 0.5)
    single_pass: bool = False  # one sweep reading forward and backward messages at once (the reference's)
    standardize: bool = False  # standardize inputs by the episode's running mean and variance
    standardize_over: str = "unit"  # per input "unit", "all" units' values pooled, or each "example" alone
    input_weights: str = "equal"  # or "variance": first-layer messages weigh input units by their variance
    name: ClassVar[str] = "vsml"
    # Inner batches keep each copy's remembered messages (and average `merge_fraction` of the LSTM states).
    per_example: ClassVar[tuple[str, ...]] = ("fwd_in", "bwd_in")

    def __post_init__(self):
        if self.msg_size < 2:
            raise ValueError("vsml: msg_size must be at least 2 (channel 0 error/value, channel 1 label)")
        if self.ticks < 1:
            raise ValueError("vsml: ticks must be at least 1")
        if self.groups < 1:
            raise ValueError("vsml: groups must be at least 1")
        if self.shared_base and self.groups == 1:
            raise ValueError("vsml: shared_base splits each group's parameters into a shared base and the "
                             "group's offset; it needs groups above 1 (e.g. vsml:groups=10,shared_base=true)")
        for option in ("init_rand_proportion", "merge_fraction"):
            if not 0.0 <= getattr(self, option) <= 1.0:
                raise ValueError(f"vsml: {option} is a fraction of each LSTM state vector, between 0 and 1; "
                                 f"got {getattr(self, option)}")
        if self.standardize_over not in ("unit", "all", "example"):
            raise ValueError(f"vsml: standardize_over must be 'unit' (each input's own mean and variance), "
                             f"'all' (one over all inputs' values) or 'example' (each input vector over its "
                             f"own units); got {self.standardize_over!r}")
        if self.standardize_over != "unit" and not self.standardize:
            raise ValueError("vsml: standardize_over chooses how standardize=true scales the inputs; add "
                             "standardize=true (e.g. vsml:standardize=true,standardize_over=all)")
        if self.input_weights not in ("equal", "variance"):
            raise ValueError(f"vsml: input_weights must be 'equal' or 'variance'; got {self.input_weights!r}")
        if self.input_weights == "variance" and not (self.standardize and self.standardize_over == "unit"):
            raise ValueError("vsml: input_weights=variance puts back the input units' scales that per-unit "
                             "standardization took away; it needs standardize=true (with standardize_over=unit)")
        if self.gate_init not in GATE_INITS:
            raise ValueError(f"vsml: gate_init must be one of {', '.join(GATE_INITS)}; got {self.gate_init!r}")

    def widths(self, spec: TaskSpec) -> tuple[int, ...]:
        return (spec.input_size, *self.hidden, spec.num_classes)

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        self._check_groups(spec)
        if self.per_layer:
            return [self._group_params(k) for k in jax.random.split(key, len(self.widths(spec)) - 1)]
        return self._group_params(key)

    def _check_groups(self, spec: TaskSpec) -> None:
        widths = self.widths(spec)
        connections = [a * b for a, b in zip(widths[:-1], widths[1:])]
        if any(n % self.groups for n in connections):
            valid = [g for g in range(1, min(connections) + 1) if all(n % g == 0 for n in connections)]
            raise ValueError(f"vsml: groups={self.groups} must divide the connections of every layer "
                             f"({' and '.join(map(str, connections))} on {spec.input_size} inputs, "
                             f"{spec.num_classes} classes); valid values: {', '.join(map(str, valid))}")

    def _group_params(self, key: chex.PRNGKey) -> PyTree:
        return self._grouped(self._shared_params(key))

    def from_single_group(self, source: "VSML", params: PyTree) -> PyTree:
        """Meta-parameters whose every group starts as the one-group VSML `source`'s `params` (a warm start:
        the same function as `source` at the first generation). The caller checks the shapes it gets."""
        if self.groups == 1 or source.groups != 1:
            raise ValueError(f"a VSML with groups starts from a one-group VSML; here groups={self.groups} and the "
                             f"source's groups={source.groups}")
        return [self._grouped(p) for p in params] if self.per_layer else self._grouped(params)

    def _grouped(self, p: PyTree) -> PyTree:
        """One parameter set, copied to every group (leading axis G) when there are several, or with
        `shared_base` kept once as the base next to zero offsets per group."""
        if self.groups == 1:
            return p
        if self.shared_base:
            return {"base": p, "offset": jax.tree.map(lambda x: jnp.zeros((self.groups, *x.shape)), p)}
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (self.groups, *x.shape)), p)

    def _layer_params(self, meta_params: PyTree, layer: int, b: int) -> PyTree:
        """Layer `layer`'s parameters with leading group axes [Ga, Gb] for a grid with B outputs."""
        p = meta_params[layer] if self.per_layer else meta_params
        ga, gb = self._group_grid(b)
        if self.groups == 1:
            return jax.tree.map(lambda x: x[None, None], p)
        if self.shared_base:
            p = jax.tree.map(lambda base, offset: base + offset / self.groups, p["base"], p["offset"])
        return jax.tree.map(lambda x: x.reshape(ga, gb, *x.shape[1:]), p)

    def _group_grid(self, b: int) -> tuple[int, int]:
        """(Ga, Gb): blocks of input units and of output units (B outputs) that make the G groups."""
        gb = math.gcd(self.groups, b)
        return self.groups // gb, gb

    def _shared_params(self, key: chex.PRNGKey) -> PyTree:
        n, m = self.lstm_size, self.msg_size
        k = jax.random.split(key, 5)
        normal = jax.nn.initializers.lecun_normal()
        return {
            **self._gate_params(k[:3]),
            "fwd_head": normal(k[3], (n, m)),
            "fwd_head_b": jnp.zeros((m,)),
            "bwd_head": normal(k[4], (n, m)),
            "bwd_head_b": jnp.zeros((m,)),
            "init_h": jnp.zeros((n,)),
            "init_c": jnp.zeros((n,)),
        }

    def _gate_params(self, keys: chex.PRNGKey) -> PyTree:
        """The LSTM's weights on forward messages, backward messages and h, and its gate biases."""
        n, m = self.lstm_size, self.msg_size
        shapes = {"w_fwd": (m, 4 * n), "w_bwd": (m, 4 * n), "w_h": (n, 4 * n)}
        if self.gate_init == "lecun":
            draw, bias = jax.nn.initializers.lecun_normal(), gate_bias(n)
        else:  # the reference's one matrix over [fwd; bwd; h]; its fixed gate offsets become the bias
            draw = functools.partial(_reference_normal, fan_in=2 * m + n)
            bias = gate_bias(n, forget_gate=5.0, input_gate=-5.0)
        return {**{name: draw(k, shape) for (name, shape), k in zip(shapes.items(), keys)}, "b": bias}

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        widths = self.widths(spec)
        layers = []
        keys = jax.random.split(key, len(widths) - 1)
        for l, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            kh, kc = jax.random.split(keys[l])
            p, shape = self._layer_params(meta_params, l, b), (a, b, self.lstm_size)
            ga, gb = self._group_grid(b)
            learned = lambda v: _to_grid(jnp.broadcast_to(  # noqa: E731  each group's initial vector on its block
                v.reshape(ga * gb, 1, 1, -1), (ga * gb, a // ga, b // gb, v.shape[-1])), ga, gb)
            layer = {
                "h": learned(p["init_h"]) + self.init_noise * jax.random.normal(kh, shape),
                "c": learned(p["init_c"]) + self.init_noise * jax.random.normal(kc, shape),
            }
            if self.init_rand_proportion:  # a third key of this layer: the two above stay as they were
                layer["c"] = layer["c"] + self._random_cells(jax.random.fold_in(keys[l], 2), shape)
            if not self.single_pass:
                layer["fwd_in"] = jnp.zeros((a, self.msg_size))
            elif self.backward and l < len(widths) - 2:
                layer["bwd_in"] = jnp.zeros((b, self.msg_size))
            layers.append(layer)
        if self._episode_statistics:
            layers[0]["x_moments"] = moments.init(widths[0])
        return layers

    def _units(self, fraction: float) -> int:
        """floor(fraction N), robust to rounding (0.29 x 100 is 28.999... in floating point)."""
        return int(fraction * self.lstm_size + 1e-9)

    def _random_cells(self, key: chex.PRNGKey, shape: tuple[int, int, int]) -> chex.Array:
        """The reference's random part of the initial cell state: its first floor(p N) units."""
        a, b, n = shape
        k = self._units(self.init_rand_proportion)
        noise = _reference_normal(key, (a, b, k), fan_in=a)
        return jnp.concatenate([noise, jnp.zeros((a, b, n - k))], axis=-1)

    def _update(self, p: PyTree, layer: PyTree, fwd_in: chex.Array, bwd_in: chex.Array | None) -> PyTree:
        """`ticks` LSTM updates of every connection of one layer under fixed incoming messages.

        The grid [A, B] is cut into [Ga, A/Ga] x [Gb, B/Gb] (index names i a j b below), group (i, j) using
        parameters p[i, j]; the ticks run on the connections laid out group by group, [G, A/Ga, B/Gb, N],
        so that each group's h @ W_h is one matrix product (for G = 1 the plain [A, B, N] x [N, 4N]). The cell's
        gate factors (`lstm.gate_scale`) are folded into the small weights, so the per-connection work is
        one tanh over the 4N pre-activations (`prescaled`)."""
        ga, gb = p["b"].shape[:2]
        a, b, n = layer["h"].shape
        scale = gate_scale(self.lstm_size)
        drive = _group_einsum("iam,ijmk->ijak", fwd_in.reshape(ga, a // ga, -1), p["w_fwd"] * scale)
        drive = (drive + (p["b"] * scale)[:, :, None]).reshape(ga * gb, -1, 1, 4 * n)  # [G, A/Ga, 1, 4N]
        if bwd_in is not None:
            back = _group_einsum("jbm,ijmk->ijbk", bwd_in.reshape(gb, b // gb, -1), p["w_bwd"] * scale)
            drive = drive + back.reshape(ga * gb, 1, -1, 4 * n)  # [G, A/Ga, B/Gb, 4N]
        w_h = (p["w_h"] * scale).reshape(ga * gb, n, 4 * n)
        h, c = _to_groups(layer["h"], ga, gb), _to_groups(layer["c"], ga, gb)
        for _ in range(self.ticks):
            h, c = lstm_cell(drive + _group_einsum("gabn,gnk->gabk", h, w_h), c, prescaled=True)
        return {**layer, "h": _to_grid(h, ga, gb), "c": _to_grid(c, ga, gb)}

    @staticmethod
    def _message_to_inputs(p: PyTree, h: chex.Array) -> chex.Array:
        """[A, m]: unit a's backward message, the mean over its connections of `bwd_head(h_ab)`."""
        (ga, gb), (a, b, n) = p["b"].shape[:2], h.shape
        mean = h.reshape(ga, a // ga, gb, b // gb, n).mean(axis=3)  # [Ga, A/Ga, Gb, N]
        msg = _group_einsum("iajn,ijnm->iajm", mean, p["bwd_head"]) + p["bwd_head_b"][:, None]
        return msg.mean(axis=2).reshape(a, -1)

    @staticmethod
    def _message_to_outputs(p: PyTree, h: chex.Array, weights: chex.Array | None = None) -> chex.Array:
        """[B, m]: unit b's forward message, the mean over its connections of `fwd_head(h_ab)`, weighted by
        `weights` [A] (mean 1) where given."""
        (ga, gb), (a, b, n) = p["b"].shape[:2], h.shape
        h = h if weights is None else h * weights[:, None, None]
        mean = h.reshape(ga, a // ga, gb, b // gb, n).mean(axis=1)  # [Ga, Gb, B/Gb, N]
        msg = _group_einsum("ijbn,ijnm->ijbm", mean, p["fwd_head"]) + p["fwd_head_b"][:, :, None]
        return msg.mean(axis=0).reshape(b, -1)

    def _feedback_message(self, feedback: Feedback) -> chex.Array:
        """[C, m]: the output layer's backward message, the error (and the label) of the last prediction."""
        msg = jnp.zeros((feedback.error.shape[-1], self.msg_size)).at[:, 0].set(feedback.error)
        return msg.at[:, 1].set(feedback.label) if self.use_label else msg

    def _input_message(self, x: chex.Array) -> chex.Array:
        return jnp.zeros((x.shape[-1], self.msg_size)).at[:, 0].set(x)

    def _logits(self, msg: chex.Array) -> chex.Array:
        return self.bound * jnp.tanh(msg[:, 0] / self.bound)

    def _backward(self, p: PyTree, layers: list, feedback: Feedback) -> list:
        msg = self._feedback_message(feedback)
        new_layers = list(layers)
        for l in reversed(range(len(layers)) if self.backward else [len(layers) - 1]):
            pl = self._layer_params(p, l, layers[l]["h"].shape[1])
            new_layers[l] = self._update(pl, layers[l], layers[l]["fwd_in"], msg)
            msg = self._message_to_inputs(pl, new_layers[l]["h"])
        return new_layers

    def _forward(self, p: PyTree, layers: list, x: chex.Array) -> tuple[list, chex.Array]:
        msg = self._input_message(x)
        new_layers = []
        for l, layer in enumerate(layers):
            pl = self._layer_params(p, l, layer["h"].shape[1])
            layer = self._update(pl, {**layer, "fwd_in": msg}, msg, None)
            new_layers.append(layer)
            msg = self._message_to_outputs(pl, layer["h"], self._input_weights(layers) if l == 0 else None)
        return new_layers, self._logits(msg)

    def _single_pass(self, p: PyTree, layers: list, x: chex.Array, feedback: Feedback) -> tuple[list, chex.Array]:
        """One sweep, inputs to outputs: each layer reads its forward and backward messages together, and
        leaves its predecessor the backward message it will read in the next step."""
        msg, last = self._input_message(x), len(layers) - 1
        new_layers = []
        for l, layer in enumerate(layers):
            pl = self._layer_params(p, l, layer["h"].shape[1])
            bwd = self._feedback_message(feedback) if l == last else layer.get("bwd_in")  # None: backward=False
            layer = self._update(pl, layer, msg, bwd)
            if l and self.backward:
                new_layers[-1] = {**new_layers[-1], "bwd_in": self._message_to_inputs(pl, layer["h"])}
            new_layers.append(layer)
            msg = self._message_to_outputs(pl, layer["h"], self._input_weights(layers) if l == 0 else None)
        return new_layers, self._logits(msg)

    def _input_weights(self, layers: list) -> chex.Array | None:
        """With `input_weights=variance`, [A]: each input unit's running variance over their mean."""
        return moments.unit_weights(layers[0]["x_moments"]) if self.input_weights == "variance" else None

    @property
    def _episode_statistics(self) -> bool:
        """Whether the state keeps running input statistics (standardizing per example needs none)."""
        return self.standardize and self.standardize_over != "example"

    def _standardized(self, layers: list, x: chex.Array) -> tuple[list, chex.Array]:
        """With `standardize`, x scaled by the statistics of the episode's inputs up to and including x, or
        by its own (`standardize_over=example`)."""
        if not self._episode_statistics:
            return layers, self.input_seen(layers, x)
        stats = moments.update(layers[0]["x_moments"], x)
        return [{**layers[0], "x_moments": stats}, *layers[1:]], self._scaled(stats, x)

    def _scaled(self, stats: PyTree, x: chex.Array) -> chex.Array:
        return moments.standardize(stats, x, over_all=self.standardize_over == "all")

    def input_seen(self, state: PyTree, x: chex.Array) -> chex.Array:
        """The input as the first layer's connections saw it in the step that led to `state`."""
        if self._episode_statistics:
            return self._scaled(state[0]["x_moments"], x)
        return moments.standardize_example(x) if self.standardize else x

    def connection_outputs(self, meta_params: PyTree, state: PyTree) -> chex.Array:
        """[B, A]: what each connection (a, b) of the output layer adds to logit b (channel 0 of its forward
        head; the logit is bound * tanh(mean over a / bound)). One-group VSML only."""
        if self.groups != 1:
            raise ValueError("vsml: connection_outputs is defined for groups=1")
        p = self._layer_params(meta_params, len(state) - 1, state[-1]["h"].shape[1])
        out = state[-1]["h"] @ p["fwd_head"][0, 0, :, 0] + p["fwd_head_b"][0, 0, 0]
        return out.T

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]:
        state, x = self._standardized(state, x)
        if self.single_pass:
            return self._single_pass(meta_params, state, x, feedback)
        state = self._backward(meta_params, state, feedback)
        return self._forward(meta_params, state, x)

    def merge(self, states: PyTree) -> PyTree:
        """Average the copies' LSTM states (the first `merge_fraction` of each vector; the rest stays per
        copy), keep their remembered messages, pool their input statistics."""
        merged = average_states(states, self.per_example)
        averaged = self._units(self.merge_fraction)
        if averaged < self.lstm_size:
            merged = [{**m, **{k: jnp.concatenate([m[k][..., :averaged], s[k][..., averaged:]], axis=-1)
                               for k in ("h", "c")}} for m, s in zip(merged, states)]
        if self._episode_statistics:
            merged[0] = {**merged[0], "x_moments": moments.pool(states[0]["x_moments"])}
        return merged

    def size_formula(self, spec: TaskSpec) -> tuple[int, int]:
        """(algorithm size, state size) from the docstring's formulas."""
        n, m, w = self.lstm_size, self.msg_size, self.widths(spec)
        per_group = 4 * n * (2 * m + n + 1) + 2 * (n * m + m) + 2 * n
        algorithm = per_group * (self.groups + self.shared_base) * (len(w) - 1 if self.per_layer else 1)
        if not self.single_pass:
            messages = sum(a * m for a in w[:-1])
        else:
            messages = sum(b * m for b in w[1:-1]) if self.backward else 0
        state = sum(a * b * 2 * n for a, b in zip(w[:-1], w[1:])) + messages + (2 * w[0] + 1) * self._episode_statistics
        return algorithm, state
