"""The shared LSTM cell (one tanh over all gates) is the textbook cell with sigmoid gates, up to rounding; its
written-out tanh is jnp.tanh up to rounding, and FLOP counts see it as XLA's one op."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalearn.learners import VSML, Feedback, TaskSpec, step_flops
from metalearn.learners.base import compiled_flops
from metalearn.learners.lstm import builtin_tanh, gate_scale, lstm_cell, tanh


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


def test_tanh_is_jnp_tanh_up_to_rounding_with_its_derivative():
    x = jnp.concatenate([jnp.linspace(-30.0, 30.0, 200_001), jnp.logspace(-30, 1, 1000), -jnp.logspace(-30, 1, 1000)])
    np.testing.assert_allclose(tanh(x), jnp.tanh(x), rtol=1e-6, atol=1e-6)
    assert np.all(np.abs(tanh(x)) <= 1) and tanh(jnp.float32(0.0)) == 0
    grad = jax.vmap(jax.grad(tanh))(x)
    np.testing.assert_allclose(grad, 1 - jnp.tanh(x) ** 2, atol=2e-6)


def test_flop_counts_see_one_op_per_tanh_and_training_gets_the_written_out_one():
    spec = TaskSpec(input_size=8, num_classes=3)
    x = jnp.ones((4, 64))
    hlo = lambda: jax.jit(lambda x: lstm_cell(x, x[:, :16])).lower(x).compile().as_text()  # noqa: E731
    assert " tanh(" not in hlo()
    with builtin_tanh():
        assert " tanh(" in hlo()
    assert " tanh(" not in hlo()  # the switch ends with its block
    learner, key = VSML(), jax.random.key(0)
    meta = learner.init_meta_params(key, spec)
    args = (meta, learner.init_state(meta, key, spec), jnp.zeros(8), Feedback.zeros(3))
    trained = compiled_flops(jax.jit(learner.step).lower(*args).compile())  # what training runs
    assert trained > 1.5 * step_flops(learner, spec)  # the polynomial's multiply-adds, left out of the count
