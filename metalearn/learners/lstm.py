"""The LSTM cell that VSML (per connection), the meta-RNN and the low-rank family share.

Each learner computes its own gate pre-activations (their input projections differ); the cell turns them
into the new (h, c). Gates are ordered [input, forget, cell, output] along the last axis.

The gates are one tanh over all 4N pre-activations: sigmoid(z) = (1 + tanh(z / 2)) / 2, so the input,
forget and output gates are tanh(z / 2) / 2 + 1/2 and the cell gate a plain tanh (`gate_scale` holds the
1/2 and 1 factors). It is the textbook cell up to rounding (tests/test_lstm.py), with one
transcendental per gate instead of three sigmoids and a tanh: what VSML's per-connection elementwise work
costs on CPU (bench/README.md). A learner may fold the factors into its weights (`prescaled=True`).
"""

from __future__ import annotations

import chex
import jax.numpy as jnp


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
    i, f, g, o = jnp.split(jnp.tanh(gates if prescaled else gates * scale) * scale + (1 - scale), 4, axis=-1)
    c = f * c + i * g
    return o * jnp.tanh(c), c
