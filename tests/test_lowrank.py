"""LowRankRNN specifics (the conformance suite covers shapes and size formulas): reduction to the
meta-RNN, the algorithm/state ratio span, no units x units intermediates, gradients, config errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalearn.rollout.inner_loop import run_episode
from learner_testing import SPEC, feedback

from metalearn.learners import Feedback, LowRankRNN, MetaRNN, TaskSpec, learner_sizes, make_learner
from tasks import load_task

MNIST = TaskSpec(input_size=784, num_classes=10)
make = make_learner


def test_dense_setting_is_the_meta_rnn():
    learner, meta_rnn = LowRankRNN(units=8, rank=0), MetaRNN(hidden=8)
    meta = meta_rnn.init_meta_params(jax.random.key(0), SPEC)
    assert jax.tree.map(jnp.shape, learner.init_meta_params(jax.random.key(0), SPEC)) == \
        jax.tree.map(jnp.shape, meta)
    state, reference = learner.init_state(meta, jax.random.key(1), SPEC), meta_rnn.init_state(meta, None, SPEC)
    fb = Feedback.zeros(SPEC.num_classes)
    for t in range(3):
        x = jax.random.normal(jax.random.key(t), (SPEC.input_size,))
        state, logits = learner.step(meta, state, x, fb)
        reference, expected = meta_rnn.step(meta, reference, x, fb)
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
        fb = feedback(t)


def test_ratio_spans_from_the_meta_rnn_down_to_its_floor_on_mnist_shapes():
    """Dense at 128 units is the meta-RNN's corner; rank 1 at many units approaches the floor 5r + 2 = 7."""
    ratios = {}
    for spec in ["lowrank:units=128,rank=0", "lowrank:units=256,rank=16", "lowrank:units=65536,rank=1"]:
        sizes = learner_sizes(make(spec), MNIST)
        ratios[spec] = sizes.algorithm / sizes.state
        print(f"{spec}: algorithm {sizes.algorithm:,} state {sizes.state:,} ratio {ratios[spec]:.3g}")
    assert max(ratios.values()) >= 1e3 and 7 < min(ratios.values()) <= 7.01


@pytest.mark.parametrize("spec", ["lowrank:units=2048,rank=4", "lowrank:units=65536,rank=1"])
def test_no_intermediate_grows_with_units_squared(spec):
    learner = make(spec)
    meta = jax.eval_shape(lambda k: learner.init_meta_params(k, MNIST), jax.random.key(0))
    state = jax.eval_shape(lambda m, k: learner.init_state(m, k, MNIST), meta, jax.random.key(0))
    jaxpr = jax.make_jaxpr(learner.step)(meta, state, jnp.zeros(MNIST.input_size),
                                         Feedback.zeros(MNIST.num_classes))
    largest = max(math.prod(v.aval.shape) for eqn in jaxpr.eqns for v in eqn.outvars)
    assert largest <= 4 * learner.units  # the gates; a units x units matrix would be 512x (or 16,384x) larger


def test_episode_loss_has_gradients_for_every_meta_parameter():
    """Every factor carries gradient. The dense setting is the meta-RNN, whose gradients
    test_baselines.py checks."""
    learner = make("lowrank:units=64,rank=2")
    task = load_task("digits").train
    episodes = jax.vmap(lambda k: task.sample(k, 20))(jax.random.split(jax.random.key(0), 4))
    meta = learner.init_meta_params(jax.random.key(1), TaskSpec(task.input_size, task.num_classes))

    def mean_loss(meta):
        run = lambda k, e: run_episode(learner, meta, k, e, task.num_classes)  # noqa: E731
        return jax.vmap(run)(jax.random.split(jax.random.key(2), 4), episodes).loss.mean()

    grads = jax.jit(jax.grad(mean_loss))(meta)
    for path, grad in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(grad)), jax.tree_util.keystr(path)
        assert np.any(grad != 0), jax.tree_util.keystr(path)


@pytest.mark.parametrize("options, message", [
    ({"units": 8, "rank": 9}, "rank=9 exceeds units=8"),
    ({"units": 0}, "units must be >= 1"),
])
def test_bad_configs_raise_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        LowRankRNN(**options)


def test_the_withdrawn_tied_variant_is_an_unknown_option():
    with pytest.raises(ValueError, match=r"unknown option\(s\) groups; valid options \(defaults\): units=256, rank=4$"):
        make("lowrank:units=256,groups=16")
