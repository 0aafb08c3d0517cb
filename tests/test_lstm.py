"""The shared LSTM cell (one tanh over all gates) is the textbook cell with sigmoid gates, up to rounding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalearn.learners.lstm import gate_scale, lstm_cell


def textbook(gates, c):
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


@pytest.mark.parametrize("shape", [(16,), (5, 3, 4)])
def test_cell_is_the_textbook_cell(shape):
    units = shape[-1]
    gates = 4 * jax.random.normal(jax.random.key(0), (*shape[:-1], 4 * units))  # saturating gates too
    c = jax.random.normal(jax.random.key(1), shape)
    want = textbook(gates, c)
    for got in (lstm_cell(gates, c), lstm_cell(gates * gate_scale(units), c, prescaled=True)):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_cell_gradients_are_the_textbook_ones():
    gates, c = jax.random.normal(jax.random.key(2), (32,)), jax.random.normal(jax.random.key(3), (8,))
    loss = lambda cell: lambda g, c: sum(x.sum() ** 2 for x in cell(g, c))  # noqa: E731
    for a, b in zip(jax.grad(loss(lstm_cell), (0, 1))(gates, c), jax.grad(loss(textbook), (0, 1))(gates, c)):
        np.testing.assert_allclose(a, b, atol=1e-5)
