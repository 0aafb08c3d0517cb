"""The inner loop: predictions come before feedback; inner batches merge their state copies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalearn.learners import TaskSpec, make_learner
from metalearn.learners.base import average_states
from metalearn.rollout.inner_loop import final_part, run_episode
from tasks import Episode


def episode(length=12, dim=3, classes=4, seed=0):
    kx, ky = jax.random.split(jax.random.key(seed))
    return Episode(x=jax.random.normal(kx, (length, dim)), y=jax.random.randint(ky, (length,), 0, classes),
                   feedback_mask=jnp.ones(length, bool))


def test_the_first_prediction_is_made_before_any_feedback():
    """Class mean knows nothing at step 0: uniform logits, so its loss there is log(C)."""
    result = run_episode(make_learner("class_mean"), {}, jax.random.key(0), episode(), 4)
    assert float(result.loss[0]) == pytest.approx(np.log(4), rel=1e-5)


def test_inner_batch_copies_learn_their_own_example_then_merge():
    """Online SGD, batch 4: at each step copy b absorbs the feedback on its own previous example and predicts
    its next one; then the copies' weights are averaged (a minibatch SGD step on the batch's gradients)."""
    ep, lr, n = episode(length=12), 0.5, 4
    batched = run_episode(make_learner(f"sgd:lr={lr}"), {}, jax.random.key(0), ep, 4, batch=n)
    x, y = ep.x.reshape(3, n, -1), ep.y.reshape(3, n)

    def losses(w, b, xs, ys):  # per-copy weights [n, D, C], [n, C]
        logits = jnp.einsum("nd,ndc->nc", xs, w) + b
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), ys[:, None], 1)[:, 0], logits

    def learn(w, b, xs, ys, logits):
        error = jax.nn.softmax(logits) - jax.nn.one_hot(ys, 4)
        return w - lr * jnp.einsum("nd,nc->ndc", xs, error), b - lr * error

    w, b = jnp.zeros((n, 3, 4)), jnp.zeros((n, 4))
    loss0, logits0 = losses(w, b, x[0], y[0])
    w, b = learn(w, b, x[0], y[0], logits0)  # own example, not yet merged: the step-1 predictions use it
    loss1, logits1 = losses(w, b, x[1], y[1])
    w, b = jnp.broadcast_to(w.mean(0), w.shape), jnp.broadcast_to(b.mean(0), b.shape)  # merge
    w, b = learn(w, b, x[1], y[1], logits1)
    loss2, _ = losses(w, b, x[2], y[2])
    np.testing.assert_allclose(batched.loss, jnp.concatenate([loss0, loss1, loss2]), rtol=1e-5)


def test_merge_keeps_per_example_entries():
    states = {"w": jnp.arange(6.0).reshape(3, 2), "x_prev": jnp.arange(3.0)[:, None] * jnp.ones((3, 2)),
              "count": jnp.arange(3)}
    merged = average_states(states, keep=("x_prev",))
    np.testing.assert_allclose(merged["w"], jnp.broadcast_to(jnp.array([2.0, 3.0]), (3, 2)))
    np.testing.assert_array_equal(merged["x_prev"], states["x_prev"])
    np.testing.assert_array_equal(merged["count"], states["count"])


def test_vsml_runs_with_inner_batches_and_errors_are_clear():
    learner = make_learner("vsml:lstm_size=4,msg_size=2")
    meta = learner.init_meta_params(jax.random.key(0), TaskSpec(3, 4))
    result = jax.jit(lambda m: run_episode(learner, m, jax.random.key(1), episode(), 4, batch=3))(meta)
    assert result.loss.shape == (12,) and np.all(np.isfinite(result.loss))
    with pytest.raises(ValueError, match="does not divide into inner batches of 5"):
        run_episode(learner, meta, jax.random.key(1), episode(), 4, batch=5)
    with pytest.raises(ValueError, match="knn keeps per-example memory"):
        run_episode(make_learner("knn:capacity=12"), {}, jax.random.key(1), episode(), 4, batch=3)


def test_final_part_is_the_last_fifth():
    np.testing.assert_array_equal(final_part(jnp.arange(10)), jnp.array([8, 9]))
    np.testing.assert_array_equal(final_part(jnp.arange(3)), jnp.array([2]))
