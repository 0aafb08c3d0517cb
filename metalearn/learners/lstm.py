"""The LSTM cell that VSML (per connection), the meta-RNN and the low-rank family share.

Each learner computes its own gate pre-activations (their input projections differ); the cell turns them
into the new (h, c). Gates are ordered [input, forget, cell, output] along the last axis.

The gates are one tanh over all 4N pre-activations: sigmoid(z) = (1 + tanh(z / 2)) / 2, so the input,
forget and output gates are tanh(z / 2) / 2 + 1/2 and the cell gate a plain tanh (`gate_scale` holds the
1/2 and 1 factors). It is the textbook cell up to rounding (tests/test_lstm.py), with one
transcendental per gate instead of three sigmoids and a tanh: what VSML's per-connection elementwise work
costs on CPU (bench/README.md). A learner may fold the factors into its weights (`prescaled=True`).
That tanh is `tanh` below, XLA's own approximation written out so that the CPU backend fuses it.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator

import chex
import jax
import jax.numpy as jnp

# Eigen's float tanh, which XLA's CPU backend also emits: x P(x^2) / Q(x^2) on x clamped to +-7.9053.
_CLAMP = 7.90531110763549805
_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
      1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
_BUILTIN = contextvars.ContextVar("builtin_tanh", default=False)


@contextlib.contextmanager
def builtin_tanh() -> Iterator[None]:
    """Trace `tanh` as XLA's one op within this block: FLOP counts then see one transcendental per tanh,
    whichever formula computes it, so the compute axis and the utilization figures keep their meaning."""
    token = _BUILTIN.set(True)
    try:
        yield
    finally:
        _BUILTIN.reset(token)


def tanh(x: chex.Array) -> chex.Array:
    """tanh as plain multiply-adds and one division: the rational approximation XLA's CPU tanh uses (max
    error 2.7e-7, within 2.4e-7 of `jnp.tanh`), but fused with the cell's other elementwise work, where
    XLA's built-in op is not: a VSML generation runs 1.2x faster on an idle CPU core (bench/README.md). Derivative 1 - tanh^2."""
    return jnp.tanh(x) if _BUILTIN.get() else _rational_tanh(x)


@jax.custom_jvp
def _rational_tanh(x: chex.Array) -> chex.Array:
    x = jnp.clip(x, -_CLAMP, _CLAMP)
    x2 = x * x
    horner = lambda coefficients: functools.reduce(lambda acc, c: acc * x2 + c, coefficients)  # noqa: E731
    return x * horner(_P) / horner(_Q)


@_rational_tanh.defjvp
def _tanh_jvp(primals, tangents):
    y = _rational_tanh(primals[0])
    return y, (1 - y * y) * tangents[0]


def gate_bias(units: int, forget_gate: float = 1.0, input_gate: float = 0.0) -> chex.Array:
    """The gates' initial bias: zero except the forget gate's (1: remember by default) and the input gate's."""
    return jnp.zeros((4 * units,)).at[:units].set(input_gate).at[units : 2 * units].set(forget_gate)


def gate_scale(units: int) -> chex.Array:
    """[4N] factors s with gate = tanh(s z) s + (1 - s): 1/2 for the sigmoid gates i, f, o; 1 for g."""
    half = jnp.full((units,), 0.5)
    return jnp.concatenate([half, half, jnp.ones((units,)), half])


def lstm_cell(gates: chex.Array, c: chex.Array, prescaled: bool = False) -> tuple[chex.Array, chex.Array]:
    """(h, c) after one step from the gate pre-activations [..., 4N] and the previous cell state [..., N].

    `prescaled`: `gates` are already the pre-activations times `gate_scale` (folded into the weights)."""
    scale = gate_scale(gates.shape[-1] // 4)
    i, f, g, o = jnp.split(tanh(gates if prescaled else gates * scale) * scale + (1 - scale), 4, axis=-1)
    c = f * c + i * g
    return o * tanh(c), c
