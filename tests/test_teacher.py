"""Distillation (--teacher): the fitness scores a learner against another learner's online predictions."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from metalearn.learners import TaskSpec, make_learner
from metalearn.outer import ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.rollout.inner_loop import Teacher, mean_fitness, run_episode
from metalearn.training.config import MetaTrainConfig
from metalearn.training.loop import MetaTraining
from tasks import Episode

CLASSES = 4


def episodes(count, length=16, dim=3, seed=0):
    """Well separated classes (mean 3 x class along each input), so class mean's predictions are sharp."""
    ky, kx = jax.random.split(jax.random.key(seed))
    y = jax.random.randint(ky, (count, length), 0, CLASSES)
    x = 3.0 * y[..., None] + jax.random.normal(kx, (count, length, dim))
    return Episode(x=x, y=y, feedback_mask=jnp.ones((count, length), bool))


def one(count_episodes):
    return jax.tree.map(lambda a: a[0], count_episodes)


def test_targets_replace_the_labels_in_the_loss_but_not_in_the_feedback():
    learner, ep = make_learner("sgd:lr=0.3"), one(episodes(1))
    plain = run_episode(learner, {}, jax.random.key(0), ep, CLASSES)
    hard = run_episode(learner, {}, jax.random.key(0), ep, CLASSES, targets=jax.nn.one_hot(ep.y, CLASSES))
    np.testing.assert_allclose(hard.loss, plain.loss, rtol=1e-5, atol=1e-6)
    soft = jax.nn.softmax(jax.random.normal(jax.random.key(1), (16, CLASSES)))
    result = run_episode(learner, {}, jax.random.key(0), ep, CLASSES, targets=soft)
    np.testing.assert_allclose(result.loss, optax.softmax_cross_entropy(plain.logits, soft), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.correct, plain.correct)  # the learner still learned from the labels


def test_a_learner_taught_by_itself_scores_the_entropy_of_its_own_predictions():
    learner, data = make_learner("class_mean"), episodes(4)
    keys = jax.random.split(jax.random.key(0), 4)
    teacher = Teacher(learner, {}, temperature=1.0)
    loss, _ = mean_fitness(learner, {}, ((keys, data),), CLASSES, teacher=teacher)
    logits = jax.vmap(lambda k, ep: run_episode(learner, {}, k, ep, CLASSES).logits)(keys, data)
    p = jax.nn.softmax(logits)
    entropy = -jnp.sum(p * jax.nn.log_softmax(logits), -1).mean()
    assert float(loss) == pytest.approx(float(entropy), rel=1e-4)
    hotter, _ = mean_fitness(learner, {}, ((keys, data),), CLASSES, teacher=teacher._replace(temperature=4.0))
    assert float(hotter) > float(loss)  # softer targets: a higher cross-entropy for the same predictions


@pytest.mark.parametrize("options, temperature, level, ratio", [
    ("", 2.0, "logits", 0.9),
    (",standardize=true", 3.0, "connections", 0.6),  # connections: 3.07 -> 1.33 when written
])
def test_backprop_on_the_distillation_loss_moves_a_vsml_toward_its_teacher(options, temperature, level, ratio):
    learner = make_learner("vsml:lstm_size=4,msg_size=2,ticks=1" + options)
    spec = TaskSpec(3, CLASSES)
    teacher = Teacher(make_learner("class_mean"), {}, temperature=temperature, level=level)
    data = ((jax.random.split(jax.random.key(0), 8), episodes(8)),)
    fitness = jax.jit(jax.value_and_grad(lambda p: mean_fitness(learner, p, data, CLASSES, teacher=teacher)[0]))
    params = learner.init_meta_params(jax.random.key(0), spec)
    optimizer = optax.adam(0.03)
    state = optimizer.init(params)
    before, _ = fitness(params)
    for _ in range(40):
        loss, grad = fitness(params)
        updates, state = optimizer.update(grad, state)
        params = optax.apply_updates(params, updates)
    assert float(loss) < ratio * float(before)


def test_a_bad_teacher_is_a_clear_error():
    config = MetaTrainConfig(outer=ESConfig(population=16, chunk=2), teacher="class_means")
    with pytest.raises(ValueError, match="teacher 'class_means'"):
        MetaTraining(config, make_mesh(8))
    with pytest.raises(ValueError, match="teacher_temperature"):
        MetaTrainConfig(teacher="class_mean", teacher_temperature=0.0)
