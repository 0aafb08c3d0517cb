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
    fast = learner._update(learner._layer_params(meta, 0, SPEC.num_classes), layer, fwd_in, bwd_in)
    np.testing.assert_allclose(fast["h"], h, atol=1e-6)
    np.testing.assert_allclose(fast["c"], c, atol=1e-6)


@pytest.mark.parametrize("groups", [2, 3, 4, 12, 60])
def test_groups_start_as_plain_vsml(groups):
    """Every group is initialised with the same parameters, so any G computes what G = 1 computes."""
    spec = TaskSpec(12, 5)
    hidden = (6,) if groups in (2, 3) else ()  # 12 x 6 and 6 x 5 connections: G must divide both
    plain, grouped = VSML(hidden=hidden), VSML(hidden=hidden, groups=groups)
    key = jax.random.key(0)
    meta_1, meta_g = plain.init_meta_params(key, spec), grouped.init_meta_params(key, spec)
    assert learner_sizes(grouped, spec).algorithm == groups * learner_sizes(plain, spec).algorithm
    s1, sg = plain.init_state(meta_1, key, spec), grouped.init_state(meta_g, key, spec)
    for t in range(3):
        x = jax.random.normal(jax.random.key(t), (12,))
        s1, l1 = plain.step(meta_1, s1, x, feedback(t))
        sg, lg = grouped.step(meta_g, sg, x, feedback(t))
        np.testing.assert_allclose(lg, l1, rtol=1e-5, atol=1e-6)


def test_each_group_owns_its_block_of_connections():
    """On a 12 x 5 grid G = 15 is 5 output units x 3 blocks of 4 inputs: changing group g's LSTM changes
    only the connections of block g in the first forward pass."""
    spec = TaskSpec(12, 5)
    learner = VSML(groups=15)
    meta = learner.init_meta_params(jax.random.key(0), spec)
    state = learner.init_state(meta, jax.random.key(1), spec)
    x = jax.random.normal(jax.random.key(2), (12,))
    base, _ = learner.step(meta, state, x, feedback(0))
    changed = {**meta, "w_h": meta["w_h"].at[7].add(0.5)}  # group 7 = input block 7 // 5 = 1, output unit 7 % 5 = 2
    after, _ = learner.step(changed, state, x, feedback(0))
    differs = np.abs(np.asarray(after[0]["h"] - base[0]["h"])).max(axis=-1) > 0
    expected = np.zeros((12, 5), bool)
    expected[4:8, 2] = True
    np.testing.assert_array_equal(differs, expected)


def test_groups_that_do_not_divide_the_connections_are_an_error_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"groups=7 must divide .*60.*valid values: 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60$"):
        VSML(groups=7).init_meta_params(jax.random.key(0), TaskSpec(12, 5))
    with pytest.raises(ValueError, match="groups=120"):
        VSML(groups=120).init_meta_params(jax.random.key(0), TaskSpec(12, 5))
