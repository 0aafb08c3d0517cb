"""End to end: a tiny meta-training run, then meta_test.py and inspect_checkpoint.py on it; clear errors."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from launch import inspect_checkpoint, meta_test
from metalearn import load_run
from metalearn.learners import TaskSpec, learner_sizes
from metalearn.outer import ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.training.config import MetaTrainConfig
from metalearn.training.loop import MetaTraining, meta_train
from tasks import load_task

ROOT = Path(__file__).resolve().parents[1]
TINY = MetaTrainConfig(outer=ESConfig(population=16, chunk=2),
                       generations=4, episode_length=20, eval_every=2, eval_episodes=4, checkpoint_every=2,
                       learner="vsml:lstm_size=4,msg_size=2,ticks=1")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "tiny"
    meta_train(MetaTraining(TINY, make_mesh(8)), path, progress=False)
    return path


def script(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "launch" / name), *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


def test_meta_test_writes_consistent_table_csv_json_and_plots(run_dir):
    out = script("meta_test.py", "--run", run_dir, "--episodes", 8, "--baselines", "sgd", "knn", "--no-progress",
                 "--tasks", "digits", "ordered:digits:per_class=3,queries=10")
    assert out.returncode == 0, out.stderr
    results = run_dir / "meta_test"
    rows = json.loads((results / "results.json").read_text())["rows"]
    curves = json.loads((results / "results.json").read_text())["curves"]
    with (results / "results.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    assert [(r["task"], r["learner"]) for r in rows] == [(r["task"], r["learner"]) for r in csv_rows]
    assert len(rows) == 6  # 2 tasks x (learned + 2 baselines)
    assert list(csv_rows[0])[0] == "score" and out.stdout.splitlines()[1].split()[0] == "score"
    for row, csv_row in zip(rows, csv_rows):
        assert float(csv_row["acc"]) == pytest.approx(row["acc"])
        assert row["score"] == (row["query_acc"] if row["task"].startswith("ordered") else row["acc"])
        steps = load_task(row["task"]).test.episode_length(TINY.episode_length)
        assert len(curves[row["task"]][row["learner"]]["acc"]) == steps  # one point per inner step
        assert f"{row['acc']:.3f}" in out.stdout
    learned = rows[0]
    sizes = learner_sizes(load_run(run_dir).learner, TaskSpec(64, 10))
    assert (learned["algorithm_size"], learned["state_size"]) == (sizes.algorithm, sizes.state)
    ordered = [r for r in rows if r["task"].startswith("ordered")]
    assert all(r["query_acc"] is not None for r in ordered)
    assert len(curves["ordered:digits:per_class=3,queries=10"]["sgd"]["acc"]) == 3 * 10 + 10
    assert {p.name for p in results.glob("*.png")} == {"curves_digits.png", "curves_ordered_digits_per_class3_queries10.png"}


def test_inspect_checkpoint_agrees_with_the_run(run_dir, tmp_path):
    export = tmp_path / "params.npz"
    out = script("inspect_checkpoint.py", run_dir, "--json", "--export", export, "--plot")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    run = load_run(run_dir)
    assert info["step"] == run.step == 4 and info["saved_steps"] == [2, 4]
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["test_acc"] for e in info["metrics"]["meta_test"]] == [r["test_acc"] for r in logged if "test_acc" in r]
    assert info["metrics"]["train_fitness"]["last"] == logged[-1]["train_fitness"]
    evals = [r for r in logged if "test_acc" in r]
    assert all("val_score" in r and "score" in r["tests"]["digits"] for r in evals)
    chosen = max(evals, key=lambda r: r["val_score"])  # the first of equal scores: a tie does not replace
    assert info["best"] == {"generation": chosen["generation"], "selected_by": "validation",
                            "val_score": chosen["val_score"]}
    assert "selected by validation" in script("inspect_checkpoint.py", run_dir).stdout
    best_test = script("meta_test.py", "--run", run_dir, "--best", "--episodes", 2, "--baselines", "--no-progress")
    assert best_test.returncode == 0, best_test.stderr
    assert f"at generation {chosen['generation']} (best: generation {chosen['generation']}, selected by validation" \
        in best_test.stdout
    sizes = learner_sizes(run.learner, TaskSpec(64, 10))
    assert info["sizes"]["algorithm"] == sizes.algorithm and info["sizes"]["state"] == sizes.state
    assert sum(p["count"] for p in info["meta_parameters"].values()) == sizes.algorithm
    assert info["outer"]["adam_step"] == 4 and info["environment"]["device_count"] == 8
    saved = np.load(export)
    for name, value in run.meta_params.items():
        np.testing.assert_array_equal(saved[name], value)
    assert (run_dir / "training.png").stat().st_size > 0


def test_load_run_gives_a_learner_that_runs(run_dir):
    run = load_run(run_dir)
    meta = jax.tree.map(np.asarray, run.meta_params)
    best = load_run(run_dir, best=True)
    assert best.step in (2, 4)
    state = run.learner.init_state(meta, jax.random.key(0), TaskSpec(64, 10))
    from metalearn.learners import Feedback
    _, logits = run.learner.step(meta, state, np.zeros(64, np.float32), Feedback.zeros(10))
    assert logits.shape == (10,)


def test_errors_are_clear(run_dir, tmp_path, capsys):
    cases = [
        (["--run", tmp_path / "missing"], "does not exist"),
        (["--run", run_dir, "--step", "3"], "saved steps: 2, 4"),
        (["--run", run_dir, "--tasks", "mnsit"], "unknown task"),
        (["--run", run_dir, "--baselines", "sgdd"], "unknown learner"),
    ]
    for argv, message in cases:
        assert meta_test.main([*map(str, argv), "--no-progress"]) == 2
        assert message in capsys.readouterr().err
    assert inspect_checkpoint.main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_half_written_and_corrupted_checkpoints(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "checkpoints" / "6.orbax-checkpoint-tmp-1234").mkdir()  # a save killed before its rename
    assert load_run(copy).step == 4
    for f in (copy / "checkpoints" / "4" / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    assert meta_test.main(["--run", str(copy), "--no-progress"]) == 2
    assert "cannot" in capsys.readouterr().err


def test_task_that_does_not_fit_the_learner(tmp_path, capsys):
    config = TINY.replace(learner="meta_rnn:hidden=4", generations=2, checkpoint_every=2)
    meta_train(MetaTraining(config, make_mesh(8)), tmp_path / "rnn", progress=False)
    assert meta_test.main(["--run", str(tmp_path / "rnn"), "--tasks", "digits:dim=32", "--no-progress"]) == 2
    assert "does not fit" in capsys.readouterr().err
