"""End to end: meta-training runs, checkpoints, resumes to the same numbers, survives SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from metalearn.outer import BackpropConfig, ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.training import checkpoint
from metalearn.training.config import MetaTrainConfig
from metalearn.training.loop import MetaTraining, meta_train

ROOT = Path(__file__).resolve().parents[1]
TINY = MetaTrainConfig(outer=ESConfig(population=16, chunk=2),
                       generations=6, episode_length=20, eval_every=3, eval_episodes=4, checkpoint_every=3,
                       learner="vsml:lstm_size=4,msg_size=2,ticks=1")


def train(config, run_dir, resume=False):
    return meta_train(MetaTraining(config, make_mesh(8)), run_dir, resume=resume, progress=False)


def leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(state)]


def metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "launch" / "meta_train.py"), "--no-progress", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def tiny_args(run_dir, **overrides):
    values = {**TINY.flat(), **overrides}
    args = ["--run-dir", str(run_dir), "--devices", "8"]
    for key, value in values.items():
        args += ["--" + key.replace("_", "-"), *(value if isinstance(value, tuple) else [str(value)])]
    return args


def test_generation_step_compiles_once(devices):
    training = MetaTraining(TINY, make_mesh(8))
    state = training.init()
    for _ in range(3):
        state, _ = training.generation_step(state, training.train_tasks)
    assert training.generation_step._cache_size() == 1


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(devices, tmp_path):
    full = train(TINY, tmp_path / "full")
    train(TINY.replace(generations=3), tmp_path / "split")
    assert checkpoint.saved_steps(tmp_path / "split") == [3]
    resumed = train(TINY, tmp_path / "split", resume=True)
    for a, b in zip(leaves(full), leaves(resumed)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    full_log, split_log = metrics(tmp_path / "full"), metrics(tmp_path / "split")
    assert [m["generation"] for m in split_log] == list(range(1, 7))
    for a, b in zip(full_log, split_log):
        assert a["train_fitness"] == pytest.approx(b["train_fitness"], abs=1e-6)
        assert a.get("test_acc") == b.get("test_acc")
    assert {"test_acc", "test_acc_last20"} <= set(full_log[2]) and "test_acc" not in full_log[0]


@pytest.mark.slow
def test_sigkill_mid_run_resumes_from_the_last_checkpoint(devices, tmp_path):
    run_dir = tmp_path / "killed"
    args = tiny_args(run_dir, generations=400, checkpoint_every=2)
    proc = subprocess.Popen([sys.executable, str(ROOT / "launch" / "meta_train.py"), "--no-progress", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.time() + 240
    while time.time() < deadline and max(checkpoint.saved_steps(run_dir), default=0) < 4:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    last = max(checkpoint.saved_steps(run_dir))
    assert last >= 4
    done = cli(*tiny_args(run_dir, generations=last + 2, checkpoint_every=2), "--resume")
    assert done.returncode == 0, done.stderr
    assert f"resuming at generation {last}" in done.stdout
    log = metrics(run_dir)
    assert [m["generation"] for m in log] == list(range(1, last + 3))  # every generation exactly once

    reference = train(TINY.replace(generations=last + 2, checkpoint_every=2), tmp_path / "reference")
    template = MetaTraining(TINY, make_mesh(8)).init()
    restored = checkpoint.restore(run_dir, last + 2, template)
    for a, b in zip(leaves(reference), leaves(restored)):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("extra, message", [
    (["--devices", "9"], "xla_force_host_platform_device_count"),
    (["--population", "20"], "multiple of 2 x devices = 16"),
    (["--learner", "vsml:tick=1"], "unknown option"),
    (["--sigma", "-1"], "must be positive"),
    (["--val-tasks", "mnsit"], "validation task 'mnsit': unknown task"),
    (["--learner", "meta_rnn:hidden=4", "--val-tasks", "digits:dim=32"], "validation task 'digits:dim=32'"),
])
def test_cli_errors_are_one_line_without_traceback(tmp_path, extra, message):
    out = cli(*tiny_args(tmp_path / "run"), *extra)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_refuses_to_overwrite_a_run_without_resume(tmp_path):
    run_dir = tmp_path / "run"
    assert cli(*tiny_args(run_dir, generations=2)).returncode == 0
    again = cli(*tiny_args(run_dir, generations=2))
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    changed = cli(*tiny_args(run_dir, generations=3, sigma=0.1), "--resume")
    assert changed.returncode == 2 and "sigma" in changed.stderr


def test_backprop_outer_optimizer_trains_through_the_same_loop(devices, tmp_path):
    config = TINY.replace(outer=BackpropConfig(truncation=5), episodes_per_member=8, generations=3, lr=0.01,
                          learner="meta_rnn:hidden=8")
    training = MetaTraining(config, make_mesh(8))
    state = train(config, tmp_path / "bp")
    log = metrics(tmp_path / "bp")
    assert [m["generation"] for m in log] == [1, 2, 3] and all(np.isfinite(m["grad_norm"]) for m in log)
    assert not np.allclose(leaves(training.init().es.params)[0], leaves(state.es.params)[0])
    with pytest.raises(ValueError, match="does not divide by 8"):
        bad = MetaTraining(config.replace(episodes_per_member=4), make_mesh(8))
        bad.generation_step(bad.init(), bad.train_tasks)


@pytest.mark.slow
def test_dry_run_prints_the_axes_and_trains_nothing(tmp_path):
    out = cli("--dry-run", "--learner", "meta_rnn:hidden=8", "--run-dir", str(tmp_path / "dry"))
    assert out.returncode == 0, out.stderr
    assert "algorithm 3,066 meta-parameters, state 16 floats/task" in out.stdout and '"population": 256' in out.stdout
    assert not (tmp_path / "dry").exists()
