"""OnlineAdam, OnlineMLP, KNN and MetaRNN: interface conformance, sizes, feedback semantics, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalearn.inner_loop import final_part, run_episode
from metalearn.learners.base import Feedback, TaskSpec, learner_sizes
from metalearn.learners.knn import KNN
from metalearn.learners.meta_rnn import MetaRNN
from metalearn.learners.online_adam import OnlineAdam
from metalearn.learners.online_mlp import OnlineMLP
from metalearn.spec import build, split_spec
from tasks import load_task

SPEC = TaskSpec(input_size=12, num_classes=5)
LEARNERS = [OnlineAdam(), OnlineMLP(hidden=8), KNN(k=3, capacity=7), MetaRNN(hidden=16)]
HAND_DESIGNED = [OnlineAdam(), OnlineMLP(hidden=8), KNN(k=1, capacity=7)]


def init(learner, seed=0):
    meta = learner.init_meta_params(jax.random.key(seed), SPEC)
    return meta, learner.init_state(meta, jax.random.key(seed + 1), SPEC)


def feedback(label, logits=None):
    logits = jnp.zeros(SPEC.num_classes) if logits is None else logits
    return Feedback.from_prediction(logits, jnp.asarray(label), jnp.asarray(True))


def trees_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("learner", LEARNERS, ids=lambda l: l.name)
def test_step_shapes_jit_and_determinism(learner):
    x = jax.random.normal(jax.random.key(5), (SPEC.input_size,))
    meta, state = init(learner)
    new_state, logits = jax.jit(learner.step)(meta, state, x, feedback(2))
    assert logits.shape == (SPEC.num_classes,) and np.all(np.isfinite(logits))
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert trees_equal((new_state, logits), jax.jit(learner.step)(*init(learner), x, feedback(2)))  # same key
    np.testing.assert_allclose(learner.step(meta, state, x, feedback(2))[1], logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("learner", LEARNERS + [OnlineMLP(hidden=3), KNN(capacity=50), MetaRNN(hidden=5)],
                         ids=lambda l: repr(l))
def test_size_formula_matches_the_real_pytrees(learner):
    sizes = learner_sizes(learner, SPEC)
    assert learner.size_formula(SPEC) == (sizes.algorithm, sizes.state)


def test_meta_rnn_reference_sizes_on_mnist_shapes():
    """VSML paper's meta-RNN baseline: about 479k meta-parameters, 256 state floats."""
    sizes = learner_sizes(MetaRNN(hidden=128), TaskSpec(784, 10))
    assert sizes.algorithm == 478_986 and sizes.state == 256


def test_knn_state_grows_with_capacity():
    small, large = learner_sizes(KNN(capacity=100), SPEC), learner_sizes(KNN(capacity=300), SPEC)
    assert small.algorithm == large.algorithm == 0
    assert large.state - small.state == 200 * (SPEC.input_size + 1)


@pytest.mark.parametrize("spec, expected", [
    ("adam:lr=0.03,b1=0.8", OnlineAdam(lr=0.03, b1=0.8)),
    ("mlp_sgd:hidden=32", OnlineMLP(hidden=32)),
    ("knn:k=3,capacity=50", KNN(k=3, capacity=50)),
    ("meta_rnn:hidden=64", MetaRNN(hidden=64)),
])
def test_built_from_spec_strings(spec, expected):
    name, options = split_spec(spec)
    assert name == expected.name
    assert build(type(expected), options, spec) == expected


@pytest.mark.parametrize("learner", HAND_DESIGNED, ids=lambda l: l.name)
def test_hand_designed_learners_ignore_zero_feedback(learner):
    meta, state = init(learner)
    x = jnp.ones(SPEC.input_size)
    state, _ = learner.step(meta, state, x, feedback(1))  # stores x
    learnable = lambda s: {k: v for k, v in s.items() if k != "x_prev"}
    after_zero, _ = learner.step(meta, state, x, Feedback.zeros(SPEC.num_classes))
    after_real, _ = learner.step(meta, state, x, feedback(3))
    assert trees_equal(learnable(after_zero), learnable(state))
    assert not trees_equal(learnable(after_real), learnable(state))


def test_adam_first_step_is_a_manual_adam_step():
    learner = OnlineAdam(lr=0.05)
    meta, state = init(learner)
    x = jax.random.normal(jax.random.key(0), (SPEC.input_size,))
    state, _ = learner.step(meta, state, x, Feedback.zeros(SPEC.num_classes))  # stores x, no update
    fb = feedback(3, logits=jnp.arange(SPEC.num_classes, dtype=jnp.float32))
    new, _ = learner.step(meta, state, jnp.zeros(SPEC.input_size), fb)
    b1, b2, eps = learner.b1, learner.b2, learner.eps
    for grad, param in [(jnp.outer(x, fb.error), new["params"]["w"]), (fb.error, new["params"]["b"])]:
        m_hat = (1 - b1) * grad / (1 - b1)
        v_hat = (1 - b2) * grad**2 / (1 - b2)
        np.testing.assert_allclose(param, -0.05 * m_hat / (jnp.sqrt(v_hat) + eps), rtol=1e-5, atol=1e-7)


def test_knn_recalls_stored_examples():
    learner = KNN(k=1, capacity=10)
    meta, state = init(learner)
    xs = jax.random.normal(jax.random.key(0), (5, SPEC.input_size))
    labels = [3, 1, 4, 1, 0]
    _, logits = learner.step(meta, state, xs[0], Feedback.zeros(SPEC.num_classes))
    np.testing.assert_array_equal(logits, jnp.zeros(SPEC.num_classes))  # nothing stored: all equal
    fb = Feedback.zeros(SPEC.num_classes)
    for x, label in zip(xs, labels):
        state, _ = learner.step(meta, state, x, fb)
        fb = feedback(label)
    state, _ = learner.step(meta, state, xs[0], fb)
    for x, label in zip(xs, labels):
        _, logits = learner.step(meta, state, x, Feedback.zeros(SPEC.num_classes))
        assert int(jnp.argmax(logits)) == label


def last_fifth_accuracy(learner, episodes: int = 32, length: int = 100) -> float:
    task = load_task("digits").test

    @jax.jit
    def accuracy(key):
        episode_key, state_key = jax.random.split(key)
        batch = jax.vmap(lambda k: task.sample(k, length))(jax.random.split(episode_key, episodes))
        run = lambda k, e: run_episode(learner, {}, k, e, task.num_classes)
        result = jax.vmap(run)(jax.random.split(state_key, episodes), batch)
        return final_part(result.correct).mean()

    return float(accuracy(jax.random.key(0)))


@pytest.mark.parametrize("learner", [OnlineAdam(lr=0.003), OnlineAdam(lr=0.01), OnlineAdam(lr=0.03),
                                     OnlineMLP(), KNN(k=1, capacity=100)], ids=repr)
def test_hand_designed_learners_learn_digits(learner):
    """Last-20% accuracy on 100-step digit episodes (chance 0.1); online SGD (lr 0.1) gets ~0.82."""
    accuracy = last_fifth_accuracy(learner)
    print(f"{learner!r}: last-20% accuracy {accuracy:.3f}")
    assert accuracy > 0.5


def test_meta_rnn_episode_loss_has_gradients():
    learner = MetaRNN(hidden=16)
    task = load_task("digits").test
    episodes = jax.vmap(lambda k: task.sample(k, 20))(jax.random.split(jax.random.key(0), 4))
    meta = learner.init_meta_params(jax.random.key(1), TaskSpec(task.input_size, task.num_classes))

    def mean_loss(meta):
        run = lambda k, e: run_episode(learner, meta, k, e, task.num_classes)
        return jax.vmap(run)(jax.random.split(jax.random.key(2), 4), episodes).loss.mean()

    grads = jax.jit(jax.grad(mean_loss))(meta)
    for name, grad in grads.items():
        assert np.all(np.isfinite(grad)), name
        assert np.any(grad != 0), name
