"""Conformance of every registered learner: shapes, jit, sizes, feedback semantics, the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from learner_testing import SPEC, feedback, init, trees_equal

from metalearn.learners import KNN, LEARNERS, Feedback, learner_sizes, make_learner
from metalearn.learners.base import tree_size

SPECS = ["vsml", "vsml:hidden=6,ticks=1", "vsml:use_label=false,msg_size=4", "vsml:hidden=6x7", "vsml:hidden=6,per_layer=true",
         "vsml:lstm_size=4,msg_size=3", "vsml:groups=5", "vsml:groups=5,shared_base=true", "vsml:groups=2,hidden=6,per_layer=true",
         "vsml:init_rand_proportion=0.5,init_noise=0,gate_init=reference,merge_fraction=0.5",
         "vsml:single_pass=true,hidden=6", "vsml:single_pass=true,hidden=6x4,backward=false",
         "vsml:standardize=true,hidden=6", "vsml:standardize=true,single_pass=true,hidden=6",
         "vsml:groups=5,single_pass=true,standardize=true", "vsml:standardize=true,standardize_over=example",
         "meta_rnn:hidden=8", "meta_rnn:hidden=5", "lowrank:units=8,rank=0",
         "lowrank:units=8,rank=3", "sgd", "adam", "mlp_sgd:hidden=8", "mlp_sgd:hidden=3",
         "knn:k=3,capacity=20", "knn:capacity=50", "knn:capacity=4", "class_mean", "slda",
         "slda:shrinkage=0.5"]
HAND_DESIGNED = [s for s in SPECS if tree_size(jax.eval_shape(
    lambda k, s=s: make_learner(s).init_meta_params(k, SPEC), jax.random.key(0))) == 0]


def test_every_registered_learner_is_covered():
    assert {s.partition(":")[0] for s in SPECS} == set(LEARNERS)
    assert {s.partition(":")[0] for s in HAND_DESIGNED} == {"sgd", "adam", "mlp_sgd", "knn", "class_mean", "slda"}


@pytest.mark.parametrize("spec", SPECS)
def test_step_shapes_and_jit(spec):
    learner = make_learner(spec)
    x = jax.random.normal(jax.random.key(5), (SPEC.input_size,))
    meta, state = init(learner)
    new_state, logits = jax.jit(learner.step)(meta, state, x, feedback(2))
    assert logits.shape == (SPEC.num_classes,) and np.all(np.isfinite(logits))
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    np.testing.assert_allclose(learner.step(meta, state, x, feedback(2))[1], logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec", SPECS)
def test_successive_steps_compile_once(spec):
    """The state a step returns has the structure, shapes and dtypes of the one it took: no recompilation."""
    learner = make_learner(spec)
    meta, state = init(learner)
    step = jax.jit(learner.step)
    for t in range(3):
        x = jnp.full(SPEC.input_size, t, jnp.float32)  # as episodes hold them (not weakly typed)
        state, _ = step(meta, state, x, feedback(t % SPEC.num_classes))
    assert step._cache_size() == 1


@pytest.mark.parametrize("spec", SPECS)
def test_size_formula_equals_the_real_pytrees(spec):
    learner = make_learner(spec)
    meta, state = init(learner)
    sizes = learner_sizes(learner, SPEC)
    assert (sizes.algorithm, sizes.state) == (tree_size(meta), tree_size(state)) == learner.size_formula(SPEC)
    assert sizes.state_bytes == 4 * sizes.state and sizes.algorithm_bytes == 4 * sizes.algorithm


@pytest.mark.parametrize("spec", HAND_DESIGNED)
def test_hand_designed_learners_ignore_zero_feedback(spec):
    learner = make_learner(spec)
    meta, state = init(learner)
    x = jnp.ones(SPEC.input_size)
    state, _ = learner.step(meta, state, x, feedback(1))  # stores x
    learnable = lambda s: {k: v for k, v in s.items() if k != "x_prev"}  # noqa: E731
    after_zero, _ = learner.step(meta, state, x, Feedback.zeros(SPEC.num_classes))
    after_real, _ = learner.step(meta, state, x, feedback(3))
    assert trees_equal(learnable(after_zero), learnable(state))
    assert not trees_equal(learnable(after_real), learnable(state))


def test_knn_keeps_every_example_of_the_episode_unless_told_otherwise():
    long_episodes = SPEC._replace(episode_length=300)
    assert learner_sizes(make_learner("knn"), long_episodes) == learner_sizes(make_learner("knn:capacity=300"), SPEC)
    assert learner_sizes(KNN(capacity=7), long_episodes).state < learner_sizes(KNN(), long_episodes).state
    with pytest.raises(ValueError, match="k=5 exceeds the 3 examples"):
        init(make_learner("knn:k=5"), spec=SPEC._replace(episode_length=3))


@pytest.mark.parametrize("spec, message", [
    ("nope", "known learners: adam, class_mean, knn, lowrank, meta_rnn, mlp_sgd, sgd, slda, vsml"),
    ("vsml:tics=2", "unknown option.*tics.*valid options.*ticks=2"),
    ("vsml:ticks=two", "ticks: expected int"),
    ("vsml:ticks", "not of the form key=value"),
    ("vsml:merge_fraction=2", "merge_fraction is a fraction of each LSTM state vector, between 0 and 1"),
    ("vsml:init_rand_proportion=-0.5", "init_rand_proportion is a fraction"),
    ("vsml:gate_init=xavier", "gate_init must be one of lecun, reference; got 'xavier'"),
    ("vsml:standardize=true,standardize_over=pixel", "standardize_over must be 'unit'.*'all'.*or 'example'"),
    ("vsml:standardize_over=all", "add standardize=true"),
    ("vsml:input_weights=variance", "input_weights=variance puts back.*needs standardize=true"),
])
def test_bad_learner_specs_explain_themselves(spec, message):
    with pytest.raises(ValueError, match=message):
        make_learner(spec)
