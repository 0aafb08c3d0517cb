"""Truncated backprop as a learner wrapper: gradients cut every k steps, forward values and merge rules kept."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learner_testing import task_data
from metalearn.learners import KNN, Feedback, MetaRNN, TaskSpec, make_learner
from metalearn.learners.truncation import truncate
from metalearn.rollout.inner_loop import mean_fitness, run_episode
from tasks import Episode, load_task

LEARNER, LENGTH = MetaRNN(hidden=16), 20


@pytest.fixture(scope="module")
def digits():
    return load_task("digits").train


class Counter:
    """State s <- s + w every step, logits [s, 0]: d logit_t / dw is the number of steps differentiated."""

    name = "counter"

    def init_meta_params(self, key, spec):
        return jnp.float32(1.0)

    def init_state(self, meta_params, key, spec):
        return jnp.float32(0.0)

    def step(self, meta_params, state, x, feedback):
        state = state + meta_params
        return state, jnp.stack([state, 0.0])


@pytest.mark.parametrize("truncation, steps", [(3, 10), (5, 10), (10, 10), (1, 4)])
def test_truncation_cuts_the_gradient_every_k_steps(truncation, steps):
    learner = truncate(Counter(), truncation)
    spec = TaskSpec(1, 2)

    def total_logit(w):
        def body(state, _):
            state, logits = learner.step(w, state, jnp.zeros(1), Feedback.zeros(2))
            return state, logits[0]
        return jax.lax.scan(body, learner.init_state(w, None, spec), None, length=steps)[1].sum()

    assert jax.grad(total_logit)(1.0) == sum(t % truncation + 1 for t in range(steps))
    assert total_logit(1.0) == sum(t + 1 for t in range(steps))  # forward values untouched


def meta_gradient(task, truncation):
    spec = TaskSpec(task.input_size, task.num_classes)
    fitness = partial(mean_fitness, truncate(LEARNER, truncation), num_classes=spec.num_classes)
    params = LEARNER.init_meta_params(jax.random.key(0), spec)
    return jax.jit(jax.value_and_grad(fitness, has_aux=True))(params, (task_data(task, jax.random.key(1), 4, LENGTH),))


def test_truncation_at_episode_length_is_full_backprop(digits):
    (loss, _), full = meta_gradient(digits, 0)
    (loss_t, _), same = meta_gradient(digits, LENGTH)
    (loss_5, _), short = meta_gradient(digits, 5)
    np.testing.assert_allclose(loss_t, loss, rtol=1e-6)
    np.testing.assert_allclose(loss_5, loss, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(same)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    flat = lambda g: jnp.concatenate([x.ravel() for x in jax.tree.leaves(g)])  # noqa: E731
    assert np.isfinite(flat(short)).all()
    assert not np.allclose(flat(short), flat(full), rtol=1e-3, atol=1e-6)


def test_truncate_zero_is_the_learner_itself():
    assert truncate(LEARNER, 0) is LEARNER
    assert truncate(LEARNER, 4).name == LEARNER.name
    with pytest.raises(ValueError, match="truncation"):
        truncate(LEARNER, -1)


def test_a_truncated_learner_merges_by_its_learners_rule():
    ep = Episode(x=jax.random.normal(jax.random.key(0), (12, 3)), y=jnp.arange(12) % 4,
                 feedback_mask=jnp.ones(12, bool))
    sgd = make_learner("sgd:lr=0.5")
    plain = run_episode(sgd, {}, jax.random.key(0), ep, 4, batch=4)
    wrapped = run_episode(truncate(sgd, 2), {}, jax.random.key(0), ep, 4, batch=4)
    np.testing.assert_allclose(wrapped.loss, plain.loss, rtol=1e-6)
    with pytest.raises(ValueError, match="knn keeps per-example memory"):
        run_episode(truncate(KNN(capacity=12), 2), {}, jax.random.key(0), ep, 4, batch=4)
