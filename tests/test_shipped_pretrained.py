"""Every folder shipped under pretrained/ is what README promises: small, loadable, selected by validation,
and a learner that runs on inputs of its task's shape."""

from pathlib import Path

import jax
import numpy as np
import pytest

from metalearn import load_run
from metalearn.learners import Feedback, TaskSpec

FOLDERS = sorted(p for p in (Path(__file__).resolve().parents[1] / "pretrained").iterdir() if p.is_dir())


def test_the_shipped_algorithms_are_there():
    assert {"vsml-digits", "vsml-mnist7"} <= {p.name for p in FOLDERS}


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_shipped_folder_loads_and_runs_on_its_task_shape(folder):
    assert sum(f.stat().st_size for f in folder.iterdir()) <= 2**20
    run = load_run(folder)
    selection = run.info["pretrained"]["selection"]
    assert selection["selected_by"] == "validation" and run.step == selection["generation"]
    assert "selected by validation" in (folder / "README.md").read_text()
    assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(run.meta_params))
    spec = TaskSpec(**run.info["task_spec"])
    state = run.learner.init_state(run.meta_params, jax.random.key(0), spec)
    step = jax.jit(run.learner.step)
    feedback = Feedback.zeros(spec.num_classes)
    for t in range(3):
        x = jax.random.normal(jax.random.key(t), (spec.input_size,))
        state, logits = step(run.meta_params, state, x, feedback)
        assert logits.shape == (spec.num_classes,) and np.isfinite(logits).all()
        error = jax.nn.softmax(logits) - jax.nn.one_hot(t % spec.num_classes, spec.num_classes)
        feedback = Feedback(error=error, label=jax.nn.one_hot(t % spec.num_classes, spec.num_classes))
