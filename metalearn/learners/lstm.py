"""The LSTM cell that VSML (per connection), the meta-RNN and the low-rank family share.

Each learner computes its own gate pre-activations (their input projections differ); the cell turns them
into the new (h, c). Gates are ordered [input, forget, cell, output] along the last axis.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def gate_bias(units: int) -> chex.Array:
    """The gates' initial bias: zero except a forget-gate bias of 1, to remember by default."""
    return jnp.zeros((4 * units,)).at[units : 2 * units].set(1.0)


def lstm_cell(gates: chex.Array, c: chex.Array) -> tuple[chex.Array, chex.Array]:
    """(h, c) after one step from the gate pre-activations [..., 4N] and the previous cell state [..., N]."""
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c
