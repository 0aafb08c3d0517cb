"""Backprop meta-training: the exact optax step, independent of the device count, learns with the production
fitness."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from learner_testing import task_data
from metalearn.learners import MetaRNN, TaskSpec
from metalearn.outer.backprop import BackpropConfig
from metalearn.outer.mesh import make_mesh
from metalearn.rollout.inner_loop import mean_fitness
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
    outer = BackpropConfig().build(quadratic, optimizer, make_mesh(num_devices))
    return jax.jit(outer.step)(outer.init(params0()), jax.random.key(0), data)


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


def episodes(task, key, count):
    return task_data(task, key, count, LENGTH)


def fitness_of(learner, num_classes):
    """The production fitness (`mean_fitness`, which MetaTraining uses) of `learner`."""
    return partial(mean_fitness, learner, num_classes=num_classes)


def test_backprop_meta_trains_meta_rnn_on_digits(devices, digits):
    """30 steps on one fixed batch of episodes must fit it: with a wrong or zero gradient of the production
    fitness its loss would not fall (labels are permuted per episode, so fresh episodes would mostly only
    calibrate towards ln 10 in 30 steps)."""
    spec = TaskSpec(digits.input_size, digits.num_classes)
    fitness = fitness_of(LEARNER, spec.num_classes)
    outer = BackpropConfig().build(fitness, optax.adam(1e-2), make_mesh(8))
    params = LEARNER.init_meta_params(jax.random.key(0), spec)
    step, state = jax.jit(outer.step), outer.init(params)
    batch = (episodes(digits, jax.random.key(0), 16),)
    before = float(jax.jit(fitness)(params, batch)[0])
    train_losses = []
    for i in range(30):
        state, metrics = step(state, jax.random.key(i), batch)
        assert np.isfinite(metrics.fitness).all() and np.isfinite(metrics.grad_norm)
        train_losses.append(float(metrics.fitness.mean()))
    after = float(jax.jit(fitness)(state.params, batch)[0])
    assert after < before - 0.5, (before, after)  # seen: 2.30 -> 1.02
    assert np.mean(train_losses[-5:]) < np.mean(train_losses[:5]), train_losses
