"""Several processes, one run: 2 processes x 4 fake CPU devices on localhost (jax.distributed, gloo) give the
same meta-parameters as 1 process x 8 devices and 1 x 1; a killed worker stops the launcher, and --resume
finishes the run."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from metalearn import load_run
from metalearn.outer import ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.training import checkpoint
from metalearn.training.config import MetaTrainConfig
from metalearn.training.loop import MetaTraining, meta_train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = MetaTrainConfig(outer=ESConfig(population=16, chunk=2), generations=2, episode_length=10, checkpoint_every=1,
                         eval_episodes=4, learner="vsml:lstm_size=4,msg_size=2,ticks=1")


def config_args(config):
    args = []
    for key, value in config.flat().items():
        args += ["--" + key.replace("_", "-"), *(value if isinstance(value, (tuple, list)) else [str(value)])]
    return args


def cluster(run_dir, config, *extra, stderr=subprocess.PIPE):
    """launch/local_cluster.py with 2 processes x 4 devices (a Popen)."""
    return subprocess.Popen([sys.executable, str(ROOT / "launch" / "local_cluster.py"), "--processes", "2",
                             "--devices-per-process", "4", "--", "--no-progress", "--run-dir", str(run_dir),
                             *config_args(config), *extra],
                            stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)


def params(run_dir):
    return [np.asarray(x) for x in jax.tree.leaves(load_run(run_dir).meta_params)]


@pytest.mark.slow
def test_two_processes_match_one_process(devices, tmp_path):
    proc = cluster(tmp_path / "2x4", CONFIG)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert "8 cpu device(s) in 2 processes" in out and "done:" in out
    for name, n in (("1x8", 8), ("1x1", 1)):
        meta_train(MetaTraining(CONFIG, make_mesh(n)), tmp_path / name, progress=False)
    run = load_run(tmp_path / "2x4")
    assert run.step == 2 and run.steps == [1, 2] and run.info["environment"]["process_count"] == 2
    for name in ("1x8", "1x1"):
        for a, b in zip(params(tmp_path / "2x4"), params(tmp_path / name), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
    lines = (tmp_path / "2x4" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # written once, by process 0


@pytest.mark.slow
def test_killed_worker_stops_the_launcher_and_resume_finishes(tmp_path):
    run_dir, log = tmp_path / "killed", tmp_path / "launcher.err"
    with log.open("w") as err:
        proc = cluster(run_dir, CONFIG.replace(generations=1000), stderr=err)
    try:
        deadline = time.time() + 150
        while time.time() < deadline and not checkpoint.saved_steps(run_dir):
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert checkpoint.saved_steps(run_dir), "no checkpoint within 150 s"
        pids = [int(p) for p in re.search(r"pids ([\d ]+)", log.read_text()).group(1).split()]
        os.kill(pids[1], signal.SIGKILL)
        killed = time.time()
        proc.wait(timeout=30)  # the launcher stops process 0 itself: no hang in a collective
        assert time.time() - killed < 30
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode != 0
    assert re.search(r"error: process 1 \(pid \d+\) was killed by SIGKILL", log.read_text())
    last = max(checkpoint.saved_steps(run_dir))
    resumed = cluster(run_dir, CONFIG.replace(generations=last + 1), "--resume")
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err[-3000:]
    assert f"resuming at generation {last}" in out
    assert max(checkpoint.saved_steps(run_dir)) == last + 1
    reference = tmp_path / "uninterrupted"
    meta_train(MetaTraining(CONFIG.replace(generations=last + 1), make_mesh(8)), reference, progress=False)
    for a, b in zip(params(run_dir), params(reference), strict=True):  # the same numbers as never killed
        np.testing.assert_allclose(a, b, atol=1e-5)
