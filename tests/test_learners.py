"""Every learner: shapes, determinism, sizes from the real pytrees, feedback semantics, one compilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalearn.learners import LEARNERS, VSML, Feedback, TaskSpec, learner_config, learner_from_config, \
    learner_sizes, make_learner
from metalearn.learners.base import tree_size

SPEC = TaskSpec(input_size=12, num_classes=5)
SPECS = ["vsml", "vsml:hidden=6,ticks=1", "vsml:use_label=false,msg_size=4", "meta_rnn:hidden=8", "sgd", "adam",
         "mlp_sgd:hidden=8", "knn:k=3,capacity=20", "class_mean", "lowrank:units=16,rank=2",
         "lowrank:units=16,groups=4,rank=0"]


def init(learner, seed=0):
    meta = learner.init_meta_params(jax.random.key(seed), SPEC)
    return meta, learner.init_state(meta, jax.random.key(seed + 1), SPEC)


def feedback(label):
    onehot = jax.nn.one_hot(label, SPEC.num_classes)
    return Feedback(jax.nn.softmax(jnp.zeros(SPEC.num_classes)) - onehot, onehot)


@pytest.mark.parametrize("spec", SPECS)
def test_step_shapes_and_determinism(spec):
    learner = make_learner(spec)
    x = jax.random.normal(jax.random.key(5), (SPEC.input_size,))
    outs = []
    for _ in range(2):
        meta, state = init(learner)
        new_state, logits = jax.jit(learner.step)(meta, state, x, feedback(2))
        outs.append((new_state, logits))
    assert outs[0][1].shape == (SPEC.num_classes,)
    assert jax.tree.structure(outs[0][0]) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spec", SPECS)
def test_sizes_are_read_off_the_real_pytrees(spec):
    learner = make_learner(spec)
    meta, state = init(learner)
    sizes = learner_sizes(learner, SPEC)
    assert sizes.algorithm == tree_size(meta) and sizes.state == tree_size(state)
    assert sizes.state_bytes == 4 * sizes.state


@pytest.mark.parametrize("spec", ["vsml", "vsml:hidden=6x7", "vsml:lstm_size=4,msg_size=3"])
def test_vsml_size_formula(spec):
    learner = make_learner(spec)
    sizes = learner_sizes(learner, SPEC)
    assert learner.size_formula(SPEC) == (sizes.algorithm, sizes.state)


def test_vsml_reference_sizes_on_mnist_shapes():
    """REFERENCES.md: ~2.4k meta-parameters (LSTM 2,112 + heads 272) driving ~251k state floats on 784->10."""
    sizes = learner_sizes(VSML(), TaskSpec(784, 10))
    assert sizes.algorithm == 2112 + 272 + 32  # + the learned initial state (h, c)
    assert sizes.state == 784 * 10 * 32 + 784 * 8


@pytest.mark.parametrize("spec", ["sgd", "class_mean"])
def test_hand_designed_learners_ignore_zero_feedback(spec):
    learner = make_learner(spec)
    meta, state = init(learner)
    x = jnp.ones(SPEC.input_size)
    state, _ = learner.step(meta, state, x, feedback(1))  # stores x
    after_zero, _ = learner.step(meta, state, x, Feedback.zeros(SPEC.num_classes))
    after_real, _ = learner.step(meta, state, x, feedback(3))
    for key in after_zero:
        if key != "x_prev":
            np.testing.assert_array_equal(after_zero[key], state[key])
    assert any(not np.array_equal(after_real[k], state[k]) for k in state if k != "x_prev")


def test_sgd_step_is_a_gradient_step_on_cross_entropy():
    learner = make_learner("sgd:lr=0.5")
    meta, state = init(learner)
    x = jax.random.normal(jax.random.key(0), (SPEC.input_size,))
    state = {**state, "w": jax.random.normal(jax.random.key(1), state["w"].shape), "x_prev": x}
    logits = x @ state["w"] + state["b"]
    onehot = jax.nn.one_hot(3, SPEC.num_classes)
    fb = Feedback(jax.nn.softmax(logits) - onehot, onehot)
    new, _ = learner.step(meta, state, x, fb)
    grad = jax.grad(lambda w: -jnp.sum(jax.nn.log_softmax(x @ w + state["b"]) * onehot))(state["w"])
    np.testing.assert_allclose(new["w"], state["w"] - 0.5 * grad, atol=1e-5)


def test_vsml_state_depends_on_error_and_label():
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


def test_vsml_logits_are_bounded():
    learner = VSML(bound=3.0)
    meta, state = init(learner)
    meta = jax.tree.map(lambda p: 50.0 * p, meta)
    _, logits = learner.step(meta, state, 10 * jnp.ones(SPEC.input_size), feedback(0))
    assert np.all(np.abs(logits) <= 3.0)


def test_vsml_initial_state_is_per_connection_random():
    learner = VSML(init_noise=0.5)
    meta, state = init(learner)
    h = state[0]["h"]
    assert h.shape == (SPEC.input_size, SPEC.num_classes, 16)
    assert np.std(np.asarray(h)) == pytest.approx(0.5, rel=0.2)
    assert not np.allclose(h, init(learner, seed=3)[1][0]["h"])


def test_learner_config_round_trips_through_json_types():
    learner = make_learner("vsml:hidden=8x4,ticks=1")
    config = learner_config(learner)
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}  # as JSON stores it
    assert learner_from_config(config) == learner


def test_every_registered_learner_is_reachable_by_name():
    for name, cls in LEARNERS.items():
        assert isinstance(make_learner(name), cls)


@pytest.mark.parametrize("spec, message", [
    ("nope", "known learners: adam, class_mean, knn, lowrank, meta_rnn, mlp_sgd, sgd, vsml"),
    ("vsml:tics=2", "unknown option.*tics.*valid options.*ticks=2"),
    ("vsml:ticks=two", "ticks: expected int"),
    ("vsml:ticks", "not of the form key=value"),
])
def test_bad_learner_specs_explain_themselves(spec, message):
    with pytest.raises(ValueError, match=message):
        make_learner(spec)
