"""Warm starts (--init-from): a run begins from a shipped or trained algorithm, copied into every VSML group."""

from pathlib import Path

import jax
import numpy as np
import pytest
from learner_testing import feedback, trees_equal

from metalearn import load_run
from metalearn.learners import TaskSpec, make_learner
from metalearn.outer import ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.training.config import MetaTrainConfig
from metalearn.training.loop import MetaTraining
from metalearn.training.warm_start import warm_start

SOURCE = str(Path(__file__).resolve().parents[1] / "pretrained" / "vsml-digits")
SPEC = TaskSpec(64, 10)  # digits: 8 x 8 inputs, 10 classes (640 connections)


def start(spec_text: str, spec: TaskSpec = SPEC):
    learner = make_learner(spec_text)
    return learner, warm_start(learner, spec, learner.init_meta_params(jax.random.key(3), spec), SOURCE)


def test_a_run_starts_from_the_sources_meta_parameters():
    config = MetaTrainConfig(outer=ESConfig(population=16, chunk=2), init_from=SOURCE, generations=1)
    params = MetaTraining(config, make_mesh(8)).init().es.params
    assert trees_equal(params, load_run(SOURCE).meta_params)


@pytest.mark.parametrize("shared_base", [False, True])
def test_every_group_starts_as_the_one_group_source_and_computes_what_it_computes(shared_base):
    source = load_run(SOURCE)
    learner, params = start(f"vsml:groups=10,shared_base={str(shared_base).lower()}")
    if shared_base:
        assert trees_equal(params["base"], source.meta_params)
        assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(params["offset"]))
    else:
        for name, x in params.items():
            np.testing.assert_array_equal(x, np.broadcast_to(source.meta_params[name], x.shape))
    key = jax.random.key(0)
    s1, sg = source.learner.init_state(source.meta_params, key, SPEC), learner.init_state(params, key, SPEC)
    for t in range(3):
        x = jax.random.normal(jax.random.key(t), (64,))
        s1, l1 = source.learner.step(source.meta_params, s1, x, feedback(t, num_classes=10))
        sg, lg = learner.step(params, sg, x, feedback(t, num_classes=10))
        np.testing.assert_allclose(lg, l1, rtol=1e-5, atol=1e-6)


def test_a_hidden_layer_reuses_the_shared_parameters():
    _, params = start("vsml:hidden=16")
    assert trees_equal(params, load_run(SOURCE).meta_params)


@pytest.mark.parametrize("learner, message", [
    ("vsml:lstm_size=8", "shapes"),
    ("vsml:groups=10,lstm_size=8", "lstm_size 8"),
    ("vsml:groups=10,per_layer=true", "per_layer"),
    ("meta_rnn", "same learner"),
])
def test_a_source_of_another_shape_is_a_clear_error(learner, message):
    with pytest.raises(ValueError, match=message):
        start(learner)
