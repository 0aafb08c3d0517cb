"""Warm starts (--init-from): a run begins from a shipped or trained algorithm, copied into every VSML group."""

import json
import shutil
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
from metalearn.training import pretrained
from metalearn.training.checkpoint import CheckpointError
from metalearn.training.loop import MetaTraining, meta_train
from metalearn.training.warm_start import warm_start

SOURCE = str(Path(__file__).resolve().parents[1] / "pretrained" / "vsml-digits")
SPEC = TaskSpec(64, 10)  # digits: 8 x 8 inputs, 10 classes (640 connections)


def start(spec_text: str, spec: TaskSpec = SPEC):
    learner = make_learner(spec_text)
    return learner, warm_start(learner, learner.init_meta_params(jax.random.key(3), spec), SOURCE)


def assert_same_logits(learner_a, params_a, learner_b, params_b, steps=3):
    """Both learners, from the same state key, predict the same logits on the same inputs and feedback."""
    key = jax.random.key(0)
    sa, sb = learner_a.init_state(params_a, key, SPEC), learner_b.init_state(params_b, key, SPEC)
    for t in range(steps):
        x = jax.random.normal(jax.random.key(t), (SPEC.input_size,))
        sa, la = learner_a.step(params_a, sa, x, feedback(t, num_classes=SPEC.num_classes))
        sb, lb = learner_b.step(params_b, sb, x, feedback(t, num_classes=SPEC.num_classes))
        np.testing.assert_allclose(lb, la, rtol=1e-5, atol=1e-6)


def test_a_run_starts_from_the_sources_meta_parameters():
    config = MetaTrainConfig(outer=ESConfig(population=16, chunk=2), init_from=SOURCE, generations=1,
                             learner=load_run(SOURCE).config.learner)
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
    assert_same_logits(source.learner, source.meta_params, learner, params)


def test_a_hidden_layer_reuses_the_shared_parameters():
    _, params = start("vsml:hidden=16")
    assert trees_equal(params, load_run(SOURCE).meta_params)


def test_input_weights_reuse_a_standardized_source_as_it_is():
    path = SOURCE.replace("vsml-digits", "vsml-mnist7-imit-s0")
    learner = make_learner("vsml:standardize=true,input_weights=variance")
    template = learner.init_meta_params(jax.random.key(3), TaskSpec(49, 10))
    assert trees_equal(warm_start(learner, template, path), load_run(path).meta_params)


def test_groups_with_a_hidden_layer_compute_what_the_one_group_network_computes():
    source = load_run(SOURCE)
    plain, grouped = make_learner("vsml:hidden=4"), make_learner("vsml:groups=2,hidden=4")  # 256 and 40 connections
    params = warm_start(grouped, grouped.init_meta_params(jax.random.key(3), SPEC), SOURCE)
    assert_same_logits(plain, source.meta_params, grouped, params)


@pytest.mark.parametrize("learner, message", [
    ("vsml:lstm_size=8", "lstm_size=8"),
    ("vsml:groups=10,ticks=1", "ticks=1"),
    ("vsml:groups=10,per_layer=true", "per_layer"),
    ("meta_rnn", "it is vsml"),
])
def test_a_source_of_another_learner_or_options_is_a_clear_error(learner, message):
    with pytest.raises(ValueError, match=message):
        start(learner)


def test_a_missing_source_names_the_flag():
    learner = make_learner("vsml")
    with pytest.raises(CheckpointError, match="--init-from runs/nowhere"):
        warm_start(learner, learner.init_meta_params(jax.random.key(0), SPEC), "runs/nowhere")


def test_a_resumed_run_does_not_read_its_source_again(tmp_path):
    """The source may be gone when a warm-started run resumes: the checkpoint holds everything."""
    config = MetaTrainConfig(outer=ESConfig(population=16, chunk=2), generations=1, episode_length=10, eval_every=1,
                             eval_episodes=2, checkpoint_every=1, learner="vsml:lstm_size=4,msg_size=2,ticks=1")
    learner, spec = make_learner(config.learner), TaskSpec(64, 10, 10)
    source = tmp_path / "source"  # a small pretrained folder of the run's own learner
    pretrained.write(source, learner.init_meta_params(jax.random.key(5), spec),
                     {"config": config.to_json(), "task_spec": spec._asdict(),
                      "pretrained": {"generation": 0, "checkpoint": "latest"}}, "a test source")
    warm = config.replace(init_from=str(source))
    first = meta_train(MetaTraining(warm, make_mesh(8)), tmp_path / "run", progress=False)
    shutil.rmtree(source)
    resumed = meta_train(MetaTraining(warm.replace(generations=2), make_mesh(8)), tmp_path / "run", resume=True,
                         progress=False)
    assert int(resumed.generation) == 2 and int(first.generation) == 1
    assert "warm start" in json.loads((tmp_path / "run" / "baselines.json").read_text())  # generation 0's scores
