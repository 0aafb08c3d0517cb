"""Backprop meta-training: the exact optax step, independent of the device count, learns, truncates."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from metalearn.outer import backprop, es
from metalearn.rollout.inner_loop import run_episode
from metalearn.learners import Feedback, MetaRNN, TaskSpec
from tasks import load_task

TARGET = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.arange(5.0)}


def quadratic(params, data):
    """Mean over the episode axis of a per-episode quartic-ish distance to a shifted target."""
    def one(shift):
        dist = sum(jnp.sum((params[k] - TARGET[k] - shift[k]) ** 2) for k in TARGET)
        return dist + 0.1 * dist**2, -dist
    loss, acc = jax.vmap(one)(data)
    return loss.mean(), acc.mean()


def params0():
    return {"w": jnp.zeros((3, 4)), "b": jnp.ones(5)}


def shifts(episodes):
    k1, k2 = jax.random.split(jax.random.key(3))
    return {"w": jax.random.normal(k1, (episodes, 3, 4)), "b": jax.random.normal(k2, (episodes, 5))}


def one_step(num_devices, data, optimizer=optax.adam(0.1)):
    step = jax.jit(backprop.make_backprop_step(quadratic, optimizer, es.make_mesh(num_devices)))
    state = es.ESState(params0(), optimizer.init(params0()))
    return step(state, jax.random.key(0), jnp.float32(0.05), data)


def test_step_equals_manual_optax_step(devices):
    optimizer = optax.sgd(0.01, momentum=0.9)
    data = shifts(8)
    state, metrics = one_step(8, data, optimizer)
    (loss, acc), grad = jax.value_and_grad(quadratic, has_aux=True)(params0(), data)
    updates, opt_state = optimizer.update(grad, optimizer.init(params0()), params0())
    expected = optax.apply_updates(params0(), updates)
    for a, b in zip(jax.tree.leaves((expected, opt_state)), jax.tree.leaves(state)):
        np.testing.assert_allclose(a, b, rtol=1e-5)
    assert metrics.fitness.shape == metrics.accuracy.shape == (1,)
    np.testing.assert_allclose(metrics.fitness.mean(), loss, rtol=1e-6)
    np.testing.assert_allclose(metrics.accuracy.mean(), acc, rtol=1e-6)
    np.testing.assert_allclose(metrics.grad_norm, optax.tree.norm(grad), rtol=1e-6)


@pytest.mark.parametrize("num_devices", [2, 8])
def test_update_is_independent_of_device_count(devices, num_devices):
    data = shifts(16)
    reference, ref_metrics = one_step(1, data)
    # Adam's first step barely depends on the gradient's scale, but its moments and grad_norm do: a sum
    # instead of a mean over devices would show there.
    state, metrics = one_step(num_devices, data)
    for a, b in zip(jax.tree.leaves((reference, ref_metrics)), jax.tree.leaves((state, metrics))):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_episodes_must_divide_by_devices(devices):
    with pytest.raises(ValueError, match="12 episodes.*does not divide by 8.*multiple of 8"):
        one_step(8, shifts(12))


# --- a real learner on digits ------------------------------------------------------------------------

LEARNER, LENGTH = MetaRNN(hidden=16), 20


@pytest.fixture(scope="module")
def digits():
    return load_task("digits").train


@partial(jax.jit, static_argnums=2)
def episodes(task, key, count):
    """One task's data as MetaTraining._generation builds it: (init_keys [count], episodes [count, T, ...])."""
    k_task, k_init = jax.random.split(key)
    return jax.random.split(k_init, count), jax.vmap(lambda k: task.sample(k, LENGTH))(jax.random.split(k_task, count))


def fitness_of(learner, num_classes):
    """As MetaTraining._fitness: data = tuple over tasks of (init_keys [E], episodes [E, T, ...]); mean loss
    and accuracy over the episodes, averaged over the tasks."""
    def fitness(params, data):
        losses, accs = [], []
        for init_keys, eps in data:
            result = jax.vmap(lambda k, ep: run_episode(learner, params, k, ep, num_classes))(init_keys, eps)
            losses.append(result.loss.mean())
            accs.append(result.correct.mean())
        return jnp.mean(jnp.stack(losses)), jnp.mean(jnp.stack(accs))
    return fitness


def test_backprop_meta_trains_meta_rnn_on_digits(devices, digits):
    spec = TaskSpec(digits.input_size, digits.num_classes)
    fitness = fitness_of(LEARNER, spec.num_classes)
    optimizer = optax.adam(1e-2)
    step = jax.jit(backprop.make_backprop_step(fitness, optimizer, es.make_mesh(8)))
    params = LEARNER.init_meta_params(jax.random.key(0), spec)
    state = es.ESState(params, optimizer.init(params))
    held_out = (episodes(digits, jax.random.key(10_000), 32),)
    score = jax.jit(fitness)
    before, train_losses = float(score(params, held_out)[0]), []
    for i in range(30):
        state, metrics = step(state, jax.random.key(i), jnp.float32(0.0), (episodes(digits, jax.random.key(i), 16),))
        assert np.isfinite(metrics.fitness).all() and np.isfinite(metrics.grad_norm)
        train_losses.append(float(metrics.fitness.mean()))
    after = float(score(state.params, held_out)[0])
    # Labels are permuted per episode, so 30 steps mostly calibrate towards ln(10) = 2.303 (seen: 2.326 ->
    # 2.308 on the held-out episodes); a wrong or zero gradient would not move it.
    assert after < before - 0.01, (before, after)
    assert np.mean(train_losses[-5:]) < np.mean(train_losses[:5]), train_losses


# --- truncation --------------------------------------------------------------------------------------

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
    learner = backprop.truncate(Counter(), truncation)
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
    fitness = fitness_of(backprop.truncate(LEARNER, truncation), spec.num_classes)
    params = LEARNER.init_meta_params(jax.random.key(0), spec)
    return jax.jit(jax.value_and_grad(fitness, has_aux=True))(params, (episodes(task, jax.random.key(1), 4),))


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
    assert backprop.truncate(LEARNER, 0) is LEARNER
    assert backprop.truncate(LEARNER, 4).name == LEARNER.name
    with pytest.raises(ValueError, match="truncation"):
        backprop.truncate(LEARNER, -1)
