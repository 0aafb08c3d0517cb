"""Every folder shipped under pretrained/ is what README promises: listed there, three small files, loadable,
selected by validation, and a learner whose predictions follow the feedback it is given."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest

from metalearn import load_run
from metalearn.learners import Feedback, TaskSpec

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = sorted(p for p in (ROOT / "pretrained").iterdir() if p.is_dir())


def test_readme_lists_exactly_the_shipped_folders():
    named = set(re.findall(r"`pretrained/([a-z0-9-]+)`", (ROOT / "README.md").read_text()))
    assert named == {p.name for p in FOLDERS}


def predictions(run, spec: TaskSpec, labels: list[int]) -> np.ndarray:
    """The logits after an episode of random inputs whose true labels are `labels`, fed back as errors."""
    state = run.learner.init_state(run.meta_params, jax.random.key(0), spec)
    step = jax.jit(run.learner.step)
    feedback = Feedback.zeros(spec.num_classes)
    for t, label in enumerate(labels):
        x = jax.random.normal(jax.random.key(t), (spec.input_size,))
        state, logits = step(run.meta_params, state, x, feedback)
        assert logits.shape == (spec.num_classes,) and np.isfinite(logits).all()
        onehot = jax.nn.one_hot(label, spec.num_classes)
        feedback = Feedback(error=jax.nn.softmax(logits) - onehot, label=onehot)
    return np.asarray(step(run.meta_params, state, jax.random.normal(jax.random.key(99), (spec.input_size,)),
                           feedback)[1])


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_shipped_folder_loads_and_its_learner_follows_the_feedback(folder):
    assert sorted(f.name for f in folder.iterdir()) == ["README.md", "meta_params.npz", "run.json"]
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 2**20
    run = load_run(folder, best=True)
    assert run.info["pretrained"]["selection"]["selected_by"] == "validation"
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(run.meta_params))
    spec = TaskSpec(**run.info["task_spec"])
    steps = 6
    one_way = predictions(run, spec, [t % spec.num_classes for t in range(steps)])
    other_way = predictions(run, spec, [(t + 3) % spec.num_classes for t in range(steps)])
    assert np.abs(one_way - other_way).max() > 1e-3  # it learns from the labels, not only from the inputs
