"""Hand-designed learners and the meta-RNN: what each must do beyond the conformance suite."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from learner_testing import SPEC, feedback, init

from metalearn.learners import KNN, Feedback, MetaRNN, OnlineAdam, OnlineMLP, TaskSpec, learner_sizes, make_learner
from metalearn.rollout.inner_loop import final_part, run_episode
from tasks import load_task


def test_meta_rnn_reference_sizes_on_mnist_shapes():
    """VSML paper's meta-RNN baseline: about 479k meta-parameters, 256 state floats."""
    sizes = learner_sizes(MetaRNN(hidden=128), TaskSpec(784, 10))
    assert sizes.algorithm == 478_986 and sizes.state == 256


def test_knn_state_grows_with_capacity():
    small, large = learner_sizes(KNN(capacity=100), SPEC), learner_sizes(KNN(capacity=300), SPEC)
    assert small.algorithm == large.algorithm == 0
    assert large.state - small.state == 200 * (SPEC.input_size + 1)


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
