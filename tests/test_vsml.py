"""VSML specifics: reference sizes, feedback reaches the connections, bounded logits, random initial state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from learner_testing import SPEC, feedback, init

from metalearn.learners import VSML, TaskSpec, learner_sizes


def test_reference_sizes_on_mnist_shapes():
    """REFERENCES.md: ~2.4k meta-parameters (LSTM 2,112 + heads 272) driving ~251k state floats on 784->10."""
    sizes = learner_sizes(VSML(), TaskSpec(784, 10))
    assert sizes.algorithm == 2112 + 272 + 32  # + the learned initial state (h, c)
    assert sizes.state == 784 * 10 * 32 + 784 * 8  # + the remembered forward messages


def test_state_depends_on_error_and_label():
    learner = VSML()
    meta, state = init(learner)
    x = jnp.ones(SPEC.input_size)
    a, _ = learner.step(meta, state, x, feedback(1))
    b, _ = learner.step(meta, state, x, feedback(4))
    assert not np.allclose(a[-1]["h"], b[-1]["h"])
    no_label = VSML(use_label=False)
    c, _ = no_label.step(meta, state, x, feedback(1))
    d, _ = no_label.step(meta, state, x, feedback(1)._replace(label=jnp.zeros(SPEC.num_classes)))
    np.testing.assert_array_equal(c[-1]["h"], d[-1]["h"])


def test_hidden_layers_pass_messages_both_ways():
    learner = VSML(hidden=(6,))
    meta, state = init(learner)
    x = jnp.ones(SPEC.input_size)
    a, _ = learner.step(meta, state, x, feedback(1))
    b, _ = learner.step(meta, state, x, feedback(4))
    assert not np.allclose(a[0]["h"], b[0]["h"])  # the error reached the first layer through the hidden one
    _, logits_a = learner.step(meta, state, x, feedback(1))
    _, logits_b = learner.step(meta, state, 2 * x, feedback(1))
    assert not np.allclose(logits_a, logits_b)  # the input reached the output through the hidden one


def test_logits_are_bounded():
    learner = VSML(bound=3.0)
    meta, state = init(learner)
    meta = jax.tree.map(lambda p: 50.0 * p, meta)
    _, logits = learner.step(meta, state, 10 * jnp.ones(SPEC.input_size), feedback(0))
    assert np.all(np.abs(logits) <= 3.0)


def test_initial_state_is_per_connection_random():
    learner = VSML(init_noise=0.5)
    meta, state = init(learner)
    h = state[0]["h"]
    assert h.shape == (SPEC.input_size, SPEC.num_classes, 16)
    assert np.std(np.asarray(h)) == pytest.approx(0.5, rel=0.2)
    assert not np.allclose(h, init(learner, seed=3)[1][0]["h"])


def test_per_layer_parameters_and_the_backward_ablation():
    shared, per_layer = VSML(hidden=(6,)), VSML(hidden=(6,), per_layer=True)
    assert learner_sizes(per_layer, SPEC).algorithm == 2 * learner_sizes(shared, SPEC).algorithm
    meta, state = init(shared)
    x = jnp.ones(SPEC.input_size)
    a, logits_a = shared.step(meta, state, x, feedback(1))
    b, logits_b = per_layer.step([meta, meta], state, x, feedback(1))  # equal layers: the shared learner
    np.testing.assert_allclose(logits_a, logits_b, rtol=1e-6)
    c, logits_c = per_layer.step([meta, jax.tree.map(lambda p: p + 0.1, meta)], state, x, feedback(1))
    assert not np.allclose(logits_a, logits_c)
    no_backward = VSML(hidden=(6,), backward=False)
    meta, state = init(no_backward)
    c, _ = no_backward.step(meta, state, x, feedback(1))
    d, _ = no_backward.step(meta, state, x, feedback(4))
    np.testing.assert_array_equal(c[0]["h"], d[0]["h"])  # the error never reaches the first layer
    assert not np.allclose(c[1]["h"], d[1]["h"])


def test_tanh_form_gates_are_the_textbook_lstm_cell():
    """The fast gate form (one tanh over all gates) computes sigmoid gates: compare with jax.nn.sigmoid."""
    learner = VSML(ticks=3)
    meta, state = init(learner)
    layer, fwd_in = state[-1], jax.random.normal(jax.random.key(1), (SPEC.input_size, learner.msg_size))
    bwd_in = jax.random.normal(jax.random.key(2), (SPEC.num_classes, learner.msg_size))
    h, c = layer["h"], layer["c"]
    drive = (fwd_in @ meta["w_fwd"])[:, None] + (bwd_in @ meta["w_bwd"])[None] + meta["b"]
    for _ in range(learner.ticks):
        i, f, g, o = jnp.split(drive + h @ meta["w_h"], 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
    fast = learner._update(meta, layer, fwd_in, bwd_in)
    np.testing.assert_allclose(fast["h"], h, atol=1e-6)
    np.testing.assert_allclose(fast["c"], c, atol=1e-6)
