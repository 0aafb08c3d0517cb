"""Connection-level imitation (--teacher-level connections): each VSML connection fitted to class mean's term."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalearn.learners import TaskSpec, make_learner
from metalearn.learners.base import Feedback
from metalearn.outer import BackpropConfig, ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.rollout.imitation import imitation_episode
from metalearn.training.config import MetaTrainConfig
from metalearn.training.loop import MetaTraining
from tests.test_teacher import CLASSES, episodes, one


def test_class_mean_terms_sum_to_its_logits_up_to_a_constant_per_example():
    learner, ep = make_learner("class_mean"), one(episodes(1, length=12))
    state, feedback = learner.init_state({}, None, TaskSpec(3, CLASSES)), Feedback.zeros(CLASSES)
    for x, y in zip(ep.x, ep.y):
        state, logits = learner.step({}, state, x, feedback)
        seen = state["counts"] > 0
        summed = learner.connection_terms(state, x).sum(-1)
        np.testing.assert_allclose(summed[seen], logits[seen] + jnp.sum(x**2), rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(summed[~seen], 0.0)
        feedback = Feedback.from_prediction(logits, y, True)


@pytest.mark.parametrize("weights", ["equal", "variance"])
def test_vsml_logits_are_the_bounded_weighted_mean_of_its_connection_outputs(weights):
    learner = make_learner(f"vsml:lstm_size=4,msg_size=2,standardize=true,input_weights={weights}")
    spec, ep = TaskSpec(3, CLASSES), one(episodes(1))
    params = learner.init_meta_params(jax.random.key(0), spec)
    state = learner.init_state(params, jax.random.key(1), spec)
    state, _ = learner.step(params, state, ep.x[0], Feedback.zeros(CLASSES))
    np.testing.assert_allclose(learner.input_seen(state, ep.x[0]), 0.0)  # one input: nothing to scale by yet
    for x in ep.x[1:4]:
        state, logits = learner.step(params, state, x, Feedback.zeros(CLASSES))
    var = jnp.var(ep.x[:4], axis=0)  # each input unit's variance so far: its weight, relative to their mean
    unit_weights = var / var.mean() if weights == "variance" else jnp.ones(3)
    assert weights == "equal" or np.ptp(unit_weights) > 0.1
    mean = (learner.connection_outputs(params, state) * unit_weights).mean(-1)
    np.testing.assert_allclose(logits, learner.bound * jnp.tanh(mean / learner.bound), rtol=1e-4, atol=1e-5)


def test_a_silent_vsml_is_scored_by_the_size_of_the_scaled_targets():
    """Connection outputs of zero: the loss is the mean square of (A / T) x class mean's terms, computed here
    by running class mean on the same raw inputs (no standardization) and labels."""
    learner = make_learner("vsml:lstm_size=4,msg_size=2")
    spec, ep, temperature = TaskSpec(3, CLASSES), one(episodes(1)), 2.0
    params = learner.init_meta_params(jax.random.key(0), spec)
    params = {**params, "fwd_head": jnp.zeros_like(params["fwd_head"])}
    result = imitation_episode(learner, params, jax.random.key(1), ep, CLASSES, temperature)
    teacher, expected, teacher_correct = make_learner("class_mean"), [], []
    state, feedback = teacher.init_state({}, None, spec), Feedback.zeros(CLASSES)
    for x, y in zip(ep.x, ep.y):
        state, _ = teacher.step({}, state, x, feedback)
        expected.append(jnp.mean((3 / temperature * teacher.connection_terms(state, x)) ** 2))
        teacher_correct.append(jnp.argmax(teacher.connection_terms(state, x).sum(-1)) == y)
        feedback = Feedback(jnp.zeros(CLASSES), jax.nn.one_hot(y, CLASSES))  # the label is all class mean reads
    np.testing.assert_allclose(result.loss, jnp.stack(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.target_power, result.loss, rtol=1e-6)  # silent: the error is the target
    np.testing.assert_array_equal(result.teacher_correct, jnp.stack(teacher_correct))
    assert result.loss[0] == 0.0 and result.loss[-1] > 1.0 and result.correct.shape == (16,)


@pytest.mark.parametrize("changes, message", [
    ({"learner": "vsml:hidden=8"}, "one layer and one group"),
    ({"learner": "vsml:groups=2"}, "one layer and one group"),
    ({"learner": "sgd:lr=0.1"}, "must be a VSML"),
    ({"teacher": "sgd:lr=0.1"}, "only class_mean"),
    ({"inner_batch": 2}, "inner batch is 2"),
    ({"outer": BackpropConfig(truncation=10), "episodes_per_member": 8}, "no\n?.*--truncation"),
])
def test_what_imitation_cannot_run_is_a_clear_error(changes, message):
    config = MetaTrainConfig(outer=ESConfig(population=16, chunk=2), teacher="class_mean",
                             teacher_level="connections").replace(**changes)
    with pytest.raises(ValueError, match=message):
        MetaTraining(config, make_mesh(8))


def test_an_unknown_teacher_level_is_refused():
    with pytest.raises(ValueError, match="teacher_level"):
        MetaTrainConfig(teacher="class_mean", teacher_level="units")
