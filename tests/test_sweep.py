"""The size-ratio sweep: grid expansion and validation, the report's statistics, and end to end: a tiny
sweep run in worker processes, its report, resuming without redoing points, a missing dataset skipped."""

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from metalearn import load_run
from metalearn.experiments import sweep as sw
from metalearn.experiments.presets import PRESETS
from metalearn.experiments.report import mean_interval
from metalearn.experiments.sweep_report import baseline_rows, load_results, plot_ratio, summarize, write_report
from metalearn.learners import TaskSpec, learner_sizes, make_learner
from metalearn.outer import ESConfig
from metalearn.training import checkpoint, keys
from tasks import load_task

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "name": "tiny",
    "base": {"episode_length": 20, "eval_episodes": 4, "generations": 3, "eval_every": 3, "checkpoint_every": 2},
    "learners": [
        {"label": "vsml", "learner": "vsml:lstm_size=4,msg_size=2", "outer": "es", "overrides": {"population": 8}},
        {"label": "rnn8", "learner": "meta_rnn:hidden=8", "outer": "backprop",
         "overrides": {"episodes_per_member": 4, "lr": 0.003}},
    ],
    "tasks": [{"label": "2", "count": 2, "spec": "digits:permutations=2"},
              {"label": "unbounded", "count": 0, "spec": "digits"}],
    "blocks": [{"learners": ["vsml", "rnn8"], "tasks": ["unbounded"]}, {"learners": ["rnn8"], "tasks": ["2", "unbounded"]}],
    "seeds": [0, 1],
    "unseen": {"digits": "digits", "ordered": "ordered:digits:per_class=2,queries=10", "absent": "absent_data:task"},
    "baselines": {"sgd": ["sgd:lr=0.01", "sgd:lr=1.0"], "class_mean": ["class_mean"]},
    "eval_episodes": 4,
}

# A user task whose dataset is not on the machine: what KMNIST is where it cannot be downloaded.
ABSENT = '''
from tasks.datasets import DatasetNotFoundError

def task():
    raise DatasetNotFoundError("absent: put its files in <root>/absent/")
'''


def test_points_cross_each_block_once_in_order():
    sweep = sw.SweepConfig.from_json(TINY)
    ids = [p.id for p in sweep.points()]
    assert ids == ["vsml__unbounded__s0", "rnn8__unbounded__s0", "vsml__unbounded__s1", "rnn8__unbounded__s1",
                   "rnn8__2__s0", "rnn8__2__s1"]  # rnn8 x unbounded is in both blocks: listed once
    config = sweep.meta_config(sweep.point("rnn8__2__s1"))
    assert (config.learner, config.outer.name, config.train_tasks, config.seed) == \
           ("meta_rnn:hidden=8", "backprop", ("digits:permutations=2",), 1)
    assert (config.episodes_per_member, config.lr, config.episode_length) == (4, 0.003, 20)
    assert config.test_tasks == ("digits",)  # progress is monitored on the first unseen task


@pytest.mark.parametrize("change, message", [
    ({"blocks": [{"learners": ["nope"], "tasks": ["2"]}]}, "unknown labels"),
    ({"base": {"seed": 3}}, "cannot be set"),
    ({"base": {"popsize": 3}}, "cannot be set"),
    ({"base": {"generations": 0}}, "generations must be at least 1"),
    ({"tasks": [{"label": "a__b", "count": 0, "spec": "digits"}]}, "labels must be unique"),
    ({"tasks": [{"label": "b_", "count": 0, "spec": "digits"}]}, "single '_'"),  # 'a_' + '_b' ids would clash
    ({"tasks": [{"label": "-x", "count": 0, "spec": "digits"}]}, "start with a letter or digit"),
    ({"seeds": [0, "1"]}, "seeds must be integers"),
    ({"learners": [{"label": "v", "learner": "vsml", "overrides": {"episode_length": 50}}],
      "blocks": [{"learners": ["v"], "tasks": ["2"]}]}, "must be set in base"),
    ({"learners": [{"label": "v", "learner": "vsml:lstm=3"}], "blocks": [{"learners": ["v"], "tasks": ["2"]}]},
     "bad learner spec 'vsml:lstm=3'"),
    ({"baselines": {"sgd": ["sgdd"]}}, "bad learner spec 'sgdd'"),
    ({"seeds": []}, "needs seeds"),
    ({"learners": [{"label": "x"}]}, "not a valid sweep config"),
])
def test_bad_configs_fail_before_running(change, message):
    with pytest.raises(ValueError, match=message):
        sw.SweepConfig.from_json({**TINY, **change})


def test_presets_are_valid_and_run_the_headline_at_three_seeds():
    for name, data in PRESETS.items():
        sweep = sw.SweepConfig.from_json(data)
        assert len(sweep.seeds) >= 3, name
        learners = {p.learner.label for p in sweep.points() if p.task.count == 0}
        assert any(label.startswith("vsml") for label in learners)
        assert name == "axis" or any("meta_rnn" in label for label in learners)
    paper = sw.SweepConfig.from_json(PRESETS["paper"])
    vsml = paper.meta_config(paper.points()[0])
    assert (vsml.outer.population, vsml.episode_length, vsml.outer.sigma, vsml.lr) == (1024, 500, 0.05, 0.025)
    assert paper.tasks[0].spec.startswith("mnist:resize=0")  # 28x28 inputs


def test_the_axis_preset_spans_the_ratio_under_one_es_budget():
    """Issue 17: >= 6 ratios from <= -1.5 to >= +1.5, all by ES with the same member-steps, 3 seeds, and the
    two ends and the middle crossed with 4, 64 and unbounded tasks."""
    sweep = sw.SweepConfig.from_json(PRESETS["axis"])
    spec = TaskSpec(49, 10)
    ratio = {p.label: math.log10(learner_sizes(make_learner(p.learner), spec).algorithm
                                 / learner_sizes(make_learner(p.learner), spec).state) for p in sweep.learners}
    points = sweep.points()
    budgets = {(c.outer.population, c.generations, c.episodes_per_member, c.episode_length)
               for c in (sweep.meta_config(p) for p in points) if isinstance(c.outer, ESConfig)}
    assert budgets == {(64, 100, 1, 100)}
    backprop = {p.learner.label for p in points if p.learner.outer == "backprop"}
    assert backprop and all(label.endswith("-warm-bp") for label in backprop)  # the ES points' extra comparison
    distinct = sorted({round(ratio[p.learner.label], 2) for p in points if p.learner.outer == "es"})
    assert len(distinct) >= 6 and distinct[0] <= -1.5 and distinct[-1] >= 1.5
    levels = {}
    for p in points:
        levels.setdefault(p.learner.label, set()).add((p.task.label, p.seed))
    assert all({s for _, s in seeds} == {0, 1, 2} for seeds in levels.values())
    # every ratio from a fresh start and from the same warm start; the warm ones' ends and middle crossed
    warm = [p for p in sweep.learners if "init_from" in p.overrides and p.outer == "es"]
    fresh = [p for p in sweep.learners if not {"noise_rank", "init_from"} & set(p.overrides)]
    assert {ratio[p.label] for p in fresh} == {ratio[p.label] for p in warm}
    full_rank = sorted((p.label for p in warm if "noise_rank" not in p.overrides), key=ratio.get)
    crossed = [label for label in full_rank if {t for t, _ in levels[label]} == {"4", "64", "unbounded"}]
    assert full_rank[0] in crossed and full_rank[-1] in crossed and len(crossed) >= 3
    for source in {p.overrides["init_from"] for p in warm}:
        assert load_run(ROOT / source).learner == make_learner("vsml")


def test_mean_interval_is_the_t_interval_over_seeds():
    values = [0.5, 0.6, 0.7]
    mean, half = mean_interval(values)
    assert mean == pytest.approx(0.6)
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3))
    assert math.isnan(mean_interval([0.4])[1]) and mean_interval([0.4])[0] == 0.4
    mean, half = mean_interval([0.4, math.nan])  # a seed without a score (NaN) is left out
    assert mean == 0.4 and math.isnan(half)


def _result(learner, tasks, seed, meta_train, digits, ordered):
    score = lambda acc, query=None: {"score": acc if query is None else query, "acc": acc, "acc_last20": acc,
                                     "loss": 1.0, "acc_ci": 0.0, "query_acc": query}
    return {"learner": learner, "tasks": tasks, "seed": seed, "outer": "es", "algorithm_size": 100, "state_size": 10,
            "flops_per_step": 1.0, "train_seconds": 60.0,
            "scores": {"meta_train": score(meta_train), "digits": score(digits), "ordered": score(0.1, ordered),
                       "absent": "unavailable: not here"}}


def test_summary_groups_seeds_and_computes_the_gap_on_tasks_without_a_query_phase():
    sweep = sw.SweepConfig.from_json(TINY)
    results = [_result("rnn8", "2", s, 0.9 + 0.01 * s, 0.2 + 0.02 * s, 0.3) for s in range(2)]
    results += [_result("vsml", "unbounded", 0, 0.5, 0.45, 0.6)]
    rows = summarize(sweep, results)
    assert [(r["learner"], r["tasks"], r["seeds"]) for r in rows] == [("vsml", "unbounded", 1), ("rnn8", "2", 2)]
    rnn = rows[1]
    assert rnn["meta_train"] == pytest.approx(0.905) and rnn["digits"] == pytest.approx(0.21)
    assert rnn["ordered"] == pytest.approx(0.3)  # the query phase's accuracy, not the whole episode's
    assert rnn["gap"] == pytest.approx(0.905 - 0.21)  # ordered (query metric) and absent (no data) left out
    assert "absent" not in rnn and rnn["log10_ratio"] == pytest.approx(1.0)


def test_rank_r_noise_points_are_their_own_outer_optimizer_in_the_report(tmp_path):
    config = {**TINY, "learners": [*TINY["learners"], {"label": "vsml-r2", "learner": "vsml:lstm_size=4,msg_size=2",
                                                         "outer": "es", "overrides": {"population": 8, "noise_rank": 2}}],
              "blocks": [{"learners": ["vsml", "vsml-r2"], "tasks": ["unbounded"]}]}
    sweep = sw.SweepConfig.from_json(config)
    rows = summarize(sweep, [_result(label, "unbounded", 0, 0.5, 0.4, 0.3) for label in ("vsml", "vsml-r2")])
    assert [(r["learner"], r["outer"]) for r in rows] == [("vsml", "es"), ("vsml-r2", "es, rank-2 noise")]
    plot_ratio(tmp_path / "ratio.png", rows, [], ["digits"], ["unbounded"])
    assert (tmp_path / "ratio.png").stat().st_size > 0


def test_the_report_archive_restores_the_finished_points_into_a_new_directory(tmp_path):
    sweep, source, out = sw.SweepConfig.from_json(TINY), tmp_path / "source", tmp_path / "restored"
    source.mkdir()
    sw.write_json_atomic(source / "sweep.json", sweep.to_json())
    done = sweep.points()[1:3]
    for point in done:
        (sw.point_dir(source, point.id)).mkdir(parents=True)
        result = {**_result(point.learner.label, point.task.label, point.seed, 0.5, 0.4, 0.3), "point": point.id}
        sw.write_json_atomic(sw.point_dir(source, point.id) / "result.json", result)
    write_report(source)
    assert sw.restore(out, source / "sweep_results.json") == 2
    assert [sw.is_done(out, p.id) for p in sweep.points()] == [p in done for p in sweep.points()]
    assert not sw.is_done(out, sw.BASELINES_JOB)  # the source had none: the rerun computes them
    assert load_results(out)[1] == load_results(source)[1]
    assert sw.restore(out, source / "sweep_results.json") == 0  # what is there is kept
    other = tmp_path / "other"
    other.mkdir()
    sw.write_json_atomic(other / "sweep.json", {**TINY, "seeds": [0, 1, 2]})
    with pytest.raises(ValueError, match="holds a different sweep"):
        sw.restore(other, source / "sweep_results.json")
    with pytest.raises(ValueError, match="is not a readable sweep archive"):
        sw.restore(other, source / "sweep.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"format": sw.ARCHIVE_FORMAT, "sweep": TINY, "baselines": {}, "points": [{}]}))
    with pytest.raises(ValueError, match="is not a readable sweep archive"):
        sw.restore(tmp_path / "new", broken)
    stray = json.loads((source / "sweep_results.json").read_text())
    stray["points"][0] = {**stray["points"][0], "point": "nope__1__s0"}
    broken.write_text(json.dumps(stray))
    with pytest.raises(ValueError, match="does not define: \\['nope__1__s0'\\]"):
        sw.restore(tmp_path / "new", broken)
    command = _sweep("restore", source / "sweep_results.json", "--out", tmp_path / "by_cli", env=dict(os.environ))
    assert command.returncode == 0 and "restored 2 finished point(s)" in command.stdout
    refused = _sweep("restore", source / "sweep.json", "--out", tmp_path / "by_cli", env=dict(os.environ))
    assert refused.returncode == 2 and refused.stderr.startswith("error:") and "Traceback" not in refused.stderr


def _sweep(*args, env):
    return subprocess.run([sys.executable, str(ROOT / "launch" / "sweep.py"), *map(str, args)], capture_output=True,
                          text=True, timeout=900, cwd=ROOT, env=env)


@pytest.mark.slow
def test_sweep_runs_reports_and_resumes_without_redoing_points(tmp_path):
    (tmp_path / "absent_data.py").write_text(ABSENT)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    config, out = tmp_path / "tiny.json", tmp_path / "sweep"
    config.write_text(json.dumps(TINY))
    first = _sweep("run", "--config", config, "--out", out, "--workers", 2, "--allow-user-tasks", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "unseen task 'absent' is skipped" in first.stderr

    sweep = sw.load_sweep(out)
    results = {p.id: json.loads((sw.point_dir(out, p.id) / "result.json").read_text()) for p in sweep.points()}
    assert len(results) == 6
    for point_id, r in results.items():
        assert r["point"] == point_id and r["scores"]["absent"].startswith("unavailable")
        assert 0 <= r["scores"]["meta_train"]["acc"] <= 1 and r["scores"]["ordered"]["query_acc"] is not None
        assert r["scores"]["ordered"]["score"] == r["scores"]["ordered"]["query_acc"]
        best = checkpoint.saved_steps(sw.point_dir(out, point_id) / "run", checkpoint.BEST)
        assert r["scored_checkpoint"] == {"generation": best[-1], "selected_by": "validation",
                                          "val_score": r["scored_checkpoint"]["val_score"]}
        generations = [json.loads(line)["generation"]
                       for line in (sw.point_dir(out, point_id) / "run" / "metrics.jsonl").read_text().splitlines()]
        assert generations == [1, 2, 3]
    baselines = json.loads((out / "baselines.json").read_text())
    assert baselines["sgd"]["spec"] == max(baselines["sgd"]["tuning_score"], key=baselines["sgd"]["tuning_score"].get)

    with (out / "sweep_table.csv").open() as f:
        table = list(csv.DictReader(f))
    rnn = next(r for r in table if r["learner"] == "rnn8" and r["tasks"] == "2")
    digits = [results[f"rnn8__2__s{s}"]["scores"]["digits"]["acc"] for s in (0, 1)]
    assert float(rnn["digits"]) == pytest.approx(np.mean(digits)) and rnn["seeds"] == "2"
    assert len(table) == 3 + 2  # (vsml, unbounded), (rnn8, 2), (rnn8, unbounded) + two baselines
    markdown = (out / "sweep_table.md").read_text()
    assert "Not run: absent" in markdown and "| rnn8 | backprop |" in markdown
    for plot in ("sweep_ratio.png", "sweep_tasks.png"):
        assert (out / plot).stat().st_size > 10_000

    # Resume: a finished point is kept as it is; one that lost its result is re-scored from its checkpoint
    # (its training had finished: no generation is run again); a different config in the same dir is refused.
    kept = sw.point_dir(out, "vsml__unbounded__s0") / "result.json"
    kept_time = kept.stat().st_mtime_ns
    (sw.point_dir(out, "rnn8__2__s1") / "result.json").unlink()
    second = _sweep("run", "--out", out, "--workers", 1, "--no-report", "--allow-user-tasks", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "6 done, 1 to run (1 partly trained, resumed)" in second.stdout
    assert kept.stat().st_mtime_ns == kept_time
    redone = json.loads((sw.point_dir(out, "rnn8__2__s1") / "result.json").read_text())
    for task, score in results["rnn8__2__s1"]["scores"].items():
        assert redone["scores"][task] == (score if isinstance(score, str) else pytest.approx(score))
    lines = (sw.point_dir(out, "rnn8__2__s1") / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3

    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps({**TINY, "seeds": [0, 1, 2]}))
    refused = _sweep("run", "--config", changed, "--out", out, env=env)
    assert refused.returncode == 2 and "holds a different sweep" in refused.stderr


def test_the_warm_points_start_is_scored_beside_the_baselines(tmp_path):
    """A sweep with warm points scores their common start on the baselines' episodes, as a table row."""
    source = str(ROOT / "pretrained" / "vsml-digits")
    config = {**TINY, "learners": [{"label": "warm", "learner": "vsml", "outer": "es",
                                    "overrides": {"population": 8, "init_from": source}}],
              "blocks": [{"learners": ["warm"], "tasks": ["unbounded"]}],
              "unseen": {"digits": "digits"}, "baselines": {"class_mean": ["class_mean"]}}
    sweep = sw.SweepConfig.from_json(config)
    sw.write_json_atomic(tmp_path / "sweep.json", sweep.to_json())
    start = sw.run_baselines(tmp_path)[f"start {source}"]
    run = load_run(source)
    expected = sw._scorer(sweep, 20, keys.evaluation(sweep.eval_seed))(run.learner, run.meta_params,
                                                                       load_task("digits").test)
    assert start["scores"]["digits"] == pytest.approx(expected)
    assert start["scores"]["digits"]["score"] > 0.3  # the shipped algorithm learns within 20 steps
    rows = baseline_rows(sweep, json.loads((tmp_path / "baselines.json").read_text()), ["digits"])
    assert [(r["outer"], r["learner"]) for r in rows] == [("hand-designed", "class_mean"), ("warm start", source)]


def test_a_second_run_on_the_same_directory_and_a_misfit_unseen_task_are_refused(tmp_path):
    import fcntl

    config, out = tmp_path / "tiny.json", tmp_path / "sweep"
    config.write_text(json.dumps({**TINY, "unseen": {"digits": "digits"}}))
    out.mkdir()
    with (out / ".lock").open("w") as held:  # what a running `launch/sweep.py run` holds
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = _sweep("run", "--config", config, "--out", out, env=dict(os.environ))
    assert busy.returncode == 2 and f"{out} is in use by another process" in busy.stderr
    config.write_text(json.dumps({**TINY, "unseen": {"digits": "digits", "sums": "sum:dim=8"}}))
    misfit = _sweep("run", "--config", config, "--out", tmp_path / "other", "--dry-run", env=dict(os.environ))
    assert misfit.returncode == 2 and "unseen task 'sums' (sum:dim=8) has 8 inputs and 2 classes" in misfit.stderr


def test_report_on_an_empty_or_missing_sweep_says_what_to_do(tmp_path):
    env = dict(os.environ)
    missing = _sweep("report", tmp_path / "nowhere", env=env)
    assert missing.returncode == 2 and "not a sweep directory" in missing.stderr
    (tmp_path / "s").mkdir()
    sw.write_json_atomic(tmp_path / "s" / "sweep.json", TINY)
    empty = _sweep("report", tmp_path / "s", env=env)
    assert empty.returncode == 2 and "no finished points yet" in empty.stderr
