"""Several processes, one run: 2 processes x 4 fake CPU devices on localhost (jax.distributed, gloo). SIGTERM
to every process saves one generation, a killed worker stops the launcher, --resume finishes the run, and
it ends with the same meta-parameters as 1 process x 8 devices and 1 x 1."""

import json
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
from test_reliability import logged

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


def launcher_pids(log):
    return [int(p) for p in re.search(r"pids ([\d ]+)", log.read_text()).group(1).split()]


def wait_for(condition, proc, log, timeout=150):
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"timed out; launcher stderr: {log.read_text()[-3000:]}"
        time.sleep(0.05)


def stopped_cluster(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()


@pytest.mark.slow
def test_a_multi_process_run_survives_sigterm_and_a_killed_worker_and_matches_one_process(tmp_path):
    """One 2 x 4 run's life, one launch per phase (each launch costs two JAX start-ups): a pre-emption
    (SIGTERM to every process) saves the same generation everywhere; resumed, a SIGKILLed worker stops the
    launcher without a hang and leaves that checkpoint intact; resumed again, the run finishes with the
    meta-parameters of an uninterrupted 1 x 8 and 1 x 1 run."""
    run_dir, config = tmp_path / "2x4", CONFIG.replace(generations=1000, checkpoint_every=1000, eval_every=1000)
    log = tmp_path / "sigterm.err"
    with log.open("w") as err:
        proc = cluster(run_dir, config, stderr=err)
    try:
        wait_for(lambda: logged(run_dir) > 0, proc, log)
        for pid in launcher_pids(log):  # what SLURM does before a pre-emption: every process gets SIGTERM
            os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        stopped_cluster(proc)
    assert proc.returncode == 143, log.read_text()[-3000:]
    stopped = logged(run_dir)
    assert checkpoint.saved_steps(run_dir)[-1] == stopped and load_run(run_dir).step == stopped

    log = tmp_path / "sigkill.err"
    with log.open("w") as err:
        proc = cluster(run_dir, config, "--resume", stderr=err)
    try:
        wait_for(lambda: logged(run_dir) > stopped, proc, log)
        os.kill(launcher_pids(log)[1], signal.SIGKILL)
        killed = time.time()
        proc.wait(timeout=30)  # the launcher stops process 0 itself: no hang in a collective
        assert time.time() - killed < 30
    finally:
        stopped_cluster(proc)
    assert proc.returncode != 0
    assert re.search(r"error: process 1 \(pid \d+\) was killed by SIGKILL", log.read_text())
    assert checkpoint.saved_steps(run_dir)[-1] == stopped  # the kill lost nothing that was saved

    final = config.replace(generations=stopped + 1)
    resumed = cluster(run_dir, final, "--resume")
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err[-3000:]
    assert "8 cpu device(s) in 2 processes" in out and f"resuming at generation {stopped}" in out and "done:" in out
    run = load_run(run_dir)
    assert run.step == stopped + 1 and run.info["environment"]["process_count"] == 2
    generations = [json.loads(line)["generation"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert generations == list(range(1, stopped + 2))  # written once, by process 0; the killed run's lines dropped
    for name, n in (("1x8", 8), ("1x1", 1)):
        meta_train(MetaTraining(final, make_mesh(n)), tmp_path / name, progress=False)
        for a, b in zip(params(run_dir), params(tmp_path / name), strict=True):  # the numbers of a quiet run
            np.testing.assert_allclose(a, b, atol=1e-5)
