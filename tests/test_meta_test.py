"""End to end: a tiny meta-training run, then meta_test.py and inspect_checkpoint.py on it, its export as a
pretrained folder (loaded by load_run, meta_test.py and the OrderedMNIST benchmark); clear errors."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from launch import inspect_checkpoint, meta_test
from launch import meta_train as meta_train_cli
from metalearn import load_run
from metalearn.experiments import ordered_benchmark
from metalearn.learners import TaskSpec, learner_sizes
from metalearn.outer import ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.training import checkpoint
from metalearn.training.config import MetaTrainConfig
from metalearn.training.loop import MetaTraining, meta_train
from metalearn.training.pretrained import MAX_BYTES, flatten
from tasks import load_task
from tasks.full_stream import StreamData

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


def results(out_dir):
    return json.loads((Path(out_dir) / "results.json").read_text())


def test_a_pretrained_folder_is_small_loads_and_scores_like_its_run(run_dir, tmp_path):
    folder = tmp_path / "pretrained" / "tiny-digits"
    assert inspect_checkpoint.main([str(run_dir), "--best", "--export-pretrained", str(folder)]) == 0
    assert sorted(f.name for f in folder.iterdir()) == ["README.md", "meta_params.npz", "run.json"]
    assert sum(f.stat().st_size for f in folder.iterdir()) <= MAX_BYTES
    run, shipped = load_run(run_dir, best=True), load_run(folder, best=True)
    assert (shipped.step, shipped.steps, shipped.config, shipped.learner) == (run.step, [run.step], run.config,
                                                                               run.learner)
    expected = jax.eval_shape(lambda k: run.learner.init_meta_params(k, TaskSpec(64, 10)), jax.random.key(0))
    assert jax.tree.structure(shipped.meta_params) == jax.tree.structure(expected)  # the learner's own pytree
    assert flatten(shipped.meta_params).keys() == flatten(run.meta_params).keys()
    for name, value in flatten(run.meta_params).items():
        np.testing.assert_array_equal(flatten(shipped.meta_params)[name], value)
    args = ["--episodes", "4", "--baselines", "sgd", "--no-progress", "--tasks", "digits",
            "ordered:digits:per_class=3,queries=10"]
    assert meta_test.main(["--run", str(run_dir), "--best", "--out", str(tmp_path / "from_run"), *args]) == 0
    assert meta_test.main(["--run", str(folder), "--out", str(tmp_path / "from_folder"), *args]) == 0
    from_run, from_folder = results(tmp_path / "from_run"), results(tmp_path / "from_folder")
    assert from_folder["rows"] == from_run["rows"]
    assert from_folder["meta"]["selection"] == from_run["meta"]["selection"] and from_run["meta"]["selection"]

    card = (folder / "README.md").read_text()
    record = next(r for r in (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
                  if r["generation"] == run.step)
    assert "selected by validation, never by meta-test scores" in card and f"({record['val_score']:.4f})" in card
    for split, per_task in (("validation", record["validation"]), ("test", record["tests"])):
        for task, scores in per_task.items():
            assert f"| {split} | `{task}` | {scores['score']:.4f} | whole-episode online accuracy |" in card
    assert "Meta-trained on `digits`" in card and "command: not recorded" in card
    assert f"--export-pretrained {folder} --best" in card and f"{run.step} generations to this checkpoint" in card


def test_the_ordered_benchmark_takes_a_pretrained_folder(run_dir, tmp_path):
    folder = tmp_path / "latest"
    assert inspect_checkpoint.main([str(run_dir), "--export-pretrained", str(folder)]) == 0
    assert "latest checkpoint (generation 4), exported without `--best`" in (folder / "README.md").read_text()
    xs = jax.random.normal(jax.random.key(0), (30, 64))
    ys = jnp.arange(30) % 10
    data = StreamData(xs, ys, xs[:20], ys[:20], 10, "noise")
    from_run, from_folder = (ordered_benchmark.evaluate(ordered_benchmark.run_entry(str(p), data), data, 1)
                             for p in (run_dir, folder))
    assert from_folder["score_seeds"] == from_run["score_seeds"]
    assert from_folder["learner"] == f"vsml ({folder}, generation 4)"


def test_pretrained_folders_refuse_what_they_do_not_hold(run_dir, tmp_path, capsys):
    folder = tmp_path / "shipped"
    assert inspect_checkpoint.main([str(run_dir), "--export-pretrained", str(folder)]) == 0
    capsys.readouterr()
    assert inspect_checkpoint.main([str(folder)]) == 0 and "checkpoint at generation 4" in capsys.readouterr().out
    cases = [
        (["--run", folder, "--best"], "holds the latest checkpoint of its run (generation 4), not the best"),
        (["--run", folder, "--step", "2"], "holding only generation 4, not 2"),
    ]
    for argv, message in cases:
        assert meta_test.main([*map(str, argv), "--no-progress"]) == 2
        assert message in capsys.readouterr().err
    assert inspect_checkpoint.main([str(run_dir), "--export-pretrained", str(folder)]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    params = dict(np.load(damaged / "meta_params.npz"))
    np.savez(damaged / "meta_params.npz", **{k: v for k, v in params.items() if k != "w_h"})
    with pytest.raises(checkpoint.CheckpointError, match="not a readable pretrained folder .*no array 'w_h'"):
        load_run(damaged)


def test_a_folder_that_is_neither_a_run_nor_pretrained_is_one_clear_paragraph(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    assert meta_test.main(["--run", str(tmp_path / "notes"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is neither a meta-training run nor a pretrained folder" in err
    assert "--export-pretrained" in err and "checkpoints/" in err


def test_meta_train_records_its_command_line(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(meta_train_cli, "meta_train", lambda *args, **kwargs: seen.update(kwargs))
    argv = ["--run-dir", str(tmp_path / "r"), "--devices", "8", "--population", "16", "--learner",
            "vsml:lstm_size=4,msg_size=2,ticks=1", "--train-tasks", "digits", "--no-progress"]
    assert meta_train_cli.main(argv) == 0
    assert seen["command"] == "python launch/meta_train.py " + " ".join(argv)


def test_several_runs_are_scored_on_the_same_episodes_and_summarized_over_runs(run_dir, tmp_path, capsys):
    seed1 = tmp_path / "tiny-s1"
    meta_train(MetaTraining(TINY.replace(seed=1), make_mesh(8)), seed1, progress=False)
    args = ["--best", "--episodes", "4", "--baselines", "sgd", "--no-progress", "--tasks", "digits",
            "ordered:digits:per_class=3,queries=10"]
    assert meta_test.main(["--run", str(run_dir), str(seed1), "--out", str(tmp_path / "both"), *args]) == 0
    printed = capsys.readouterr().out
    data = results(tmp_path / "both")
    alone = {}
    for path in (run_dir, seed1):  # each run's scores are the ones it gets when scored alone
        assert meta_test.main(["--run", str(path), "--out", str(tmp_path / path.name), *args]) == 0
        alone[path.name] = {r["task"]: r["score"] for r in results(tmp_path / path.name)["rows"]
                            if r["learner"].startswith("learned")}
    for task in ("digits", "ordered:digits:per_class=3,queries=10"):
        mine = {r["learner"]: r for r in data["rows"] if r["task"] == task}
        assert set(mine) == {"learned (tiny)", "learned (tiny-s1)", "sgd"}
        values = [alone["tiny"][task], alone["tiny-s1"][task]]
        assert [mine["learned (tiny)"]["score"], mine["learned (tiny-s1)"]["score"]] == values
        learned, sgd = [r for r in data["meta"]["over_runs"] if r["task"] == task]
        assert learned["per_run"] == values and learned["score"] == pytest.approx(np.mean(values))
        assert learned["interval"] == pytest.approx(stats.t.ppf(0.975, 1) * np.std(values, ddof=1) / np.sqrt(2))
        assert (sgd["learner"], sgd["score"]) == ("sgd", mine["sgd"]["score"])
        # a baseline's interval is over episodes, of whole-episode accuracy: none where the score is a query's
        assert sgd["interval"] == (mine["sgd"]["acc_ci"] if task == "digits" else None)
    assert [r["seed"] for r in data["meta"]["runs"]] == [0, 1] and "over the 2 runs" in printed

    other = tmp_path / "other-lr"  # seed 1 as a pretrained folder whose config says another lr
    assert inspect_checkpoint.main([str(seed1), "--best", "--export-pretrained", str(other)]) == 0
    info = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**info, "config": {**info["config"], "lr": 0.5}}))
    refusals = {"name its folder with --out": ["--run", str(run_dir), str(seed1), *args],
                "listed twice": ["--run", str(run_dir), str(run_dir), "--out", str(tmp_path / "x"), *args],
                "add --best": ["--run", str(run_dir), str(seed1), "--out", str(tmp_path / "x"), *args[1:]],
                "differs from": ["--run", str(run_dir), str(other), "--out", str(tmp_path / "x"), *args]}
    for message, argv in refusals.items():
        assert meta_test.main(argv) == 2
        assert message in capsys.readouterr().err
    # each seed of a two-stage recipe starts from its own first stage: a different --init-from is still a seed
    (other / "run.json").write_text(json.dumps({**info, "config": {**info["config"], "init_from": "runs/stage1_s1"}}))
    meta_test.check_seeds([load_run(run_dir, best=True), load_run(other)], meta_test.parse_args(
        ["--run", str(run_dir), str(other), "--out", str(tmp_path / "x"), *args]))
