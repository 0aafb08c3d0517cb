"""Reliability and security (issue 13): opened runs execute no code, one writer per run directory,
SIGTERM / Ctrl-C save before stopping, and damaged or stale inputs give one clear line."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_meta_train import ROOT, TINY, metrics, tiny_args, train
from test_sweep import TINY as TINY_SWEEP

from launch import inspect_checkpoint, meta_test
from launch import meta_train as meta_train_cli
from launch import sweep as sweep_cli
from metalearn import load_run
from metalearn.experiments import sweep as sw
from metalearn.outer import ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.training import checkpoint, guards, runlock
from metalearn.training.config import MetaTrainConfig
from metalearn.training.interrupt import Interrupted, StopOnSignal
from metalearn.training.loop import MetaTraining
from metalearn.training.metrics import MetricsError, read_metrics_file, rewrite_metrics
from tasks import load_task


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("reliability") / "run"
    train(TINY, path)  # checkpoints 3 and 6
    return path


def copy_of(run_dir: Path, dest: Path) -> Path:
    shutil.copytree(run_dir, dest)
    return dest


# --- opening someone else's run -------------------------------------------------------------------------

def plant_task(run_dir: Path, spec: str) -> None:
    """What a malicious shared run looks like: its saved configs name a user task."""
    for meta in run_dir.glob("*/*/config/metadata"):
        data = json.loads(meta.read_text())
        meta.write_text(json.dumps({**data, "train_tasks": [spec], "test_tasks": [spec]}))


def test_opening_a_run_or_sweep_executes_no_code_it_names(run_dir, tmp_path, capsys):
    marker = tmp_path / "marker"
    evil = f"os:system:command=touch {marker}"
    shared = copy_of(run_dir, tmp_path / "shared")
    plant_task(shared, evil)
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    sw.write_json_atomic(sweep_dir / "sweep.json", {**TINY_SWEEP, "unseen": {"evil": evil}})

    assert meta_test.main(["--run", str(shared), "--no-progress"]) == 2
    assert meta_train_cli.main(["--run-dir", str(shared), "--resume", "--generations", "9", "--no-progress"]) == 2
    assert sweep_cli.main(["run", "--out", str(sweep_dir), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert err.count(f"task {evil!r} is a user task") == 3 and "--allow-user-tasks" in err
    assert checkpoint.saved_steps(shared) == [3, 6]  # the refused resume touched nothing

    # The refusal is what kept the marker away: the task runs for a user who trusts it or typed it.
    with pytest.raises(Exception):  # os.system returns 0, not a task: whatever breaks after it ran
        meta_test.main(["--run", str(shared), "--no-progress", "--allow-user-tasks"])
    assert marker.exists()
    marker.unlink()
    with pytest.raises(Exception):
        meta_test.main(["--run", str(shared), "--no-progress", "--tasks", evil])
    assert marker.exists()


def test_checkpoints_hold_no_pickle(run_dir):
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"


# --- one writer per run directory ----------------------------------------------------------------------

def test_a_second_writer_is_refused_and_a_dead_writers_lock_taken_over(tmp_path):
    with runlock.hold(tmp_path / "run"):
        with pytest.raises(runlock.RunDirError, match=f"in use by process {os.getpid()} on"):
            with runlock.hold(tmp_path / "run"):
                pass
    with runlock.hold(tmp_path / "run"):  # released at the end of the block
        pass
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / runlock.LOCK_NAME).write_text("4194000 some-host\n")  # left by a process that died (no flock held)
    with runlock.hold(stale):
        assert (stale / runlock.LOCK_NAME).read_text().split()[0] == str(os.getpid())


def test_meta_train_on_a_run_dir_another_process_writes_exits_at_once(tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from metalearn.training import runlock\n"
                               f"with runlock.hold({str(run)!r}):\n print('held', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert meta_train_cli.main(tiny_args(run) + ["--no-progress"]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"in use by process {holder.pid}" in err
    assert not (run / "metrics.jsonl").exists()


def test_rewriting_metrics_on_resume_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"generation": g}) + "\n" for g in (1, 2, 3)))
    before = path.read_text()

    def killed(src, dst):  # a kill after the new file is written aside, before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        rewrite_metrics(path, 2)
    assert path.read_text() == before
    monkeypatch.undo()
    rewrite_metrics(path, 2)
    assert [r["generation"] for r in read_metrics_file(path)] == [1, 2]


# --- SIGTERM and Ctrl-C --------------------------------------------------------------------------------

def start_cli(run: Path, stderr: Path, *extra: str) -> subprocess.Popen:
    args = tiny_args(run, generations=1000, episode_length=400, checkpoint_every=1000, eval_every=1000)
    return subprocess.Popen([sys.executable, str(ROOT / "launch" / "meta_train.py"), "--no-progress", *args, *extra],
                            stdout=subprocess.DEVNULL, stderr=stderr.open("w"), text=True, cwd=ROOT)


def wait_for(condition, timeout=300):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def logged(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_signal_is_a_stop_request_while_training_and_handlers_are_restored_after():
    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignal() as stop:
        assert stop.requested() == 0
        os.kill(os.getpid(), signal.SIGTERM)
        StopOnSignal.wait(jnp.ones(3))  # sleeps in Python: the handler runs at once
        assert stop.requested() == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL  # a second Ctrl-C would abort at once
    assert signal.getsignal(signal.SIGTERM) is before
    assert Interrupted(signal.SIGTERM, 7).exit_code == 143 and Interrupted(signal.SIGINT, 7).exit_code == 130


@pytest.mark.slow
def test_sigterm_and_ctrl_c_save_a_checkpoint_and_a_second_ctrl_c_aborts(tmp_path):
    run, err = tmp_path / "run", tmp_path / "err.txt"
    for signum, extra in ((signal.SIGTERM, ()), (signal.SIGINT, ("--resume",))):
        before = logged(run)
        proc = start_cli(run, err, *extra)
        wait_for(lambda: logged(run) > before)
        proc.send_signal(signum)
        assert proc.wait(timeout=300) == 128 + signum, err.read_text()[-2000:]
        stopped = logged(run)
        assert f"stopped by {signal.Signals(signum).name} after generation {stopped}" in err.read_text()
        assert checkpoint.saved_steps(run)[-1] == stopped  # the checkpoint is the last logged generation
        assert [r["generation"] for r in metrics(run)] == list(range(1, stopped + 1))

    before = logged(run)
    proc = start_cli(run, err, "--resume")
    wait_for(lambda: logged(run) > before)
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: "Ctrl-C again aborts at once" in err.read_text())
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == -signal.SIGINT  # killed by the signal, not after saving
    assert checkpoint.saved_steps(run)[-1] == stopped


# --- inputs that lie, state that goes stale ------------------------------------------------------------

def test_a_cut_last_metrics_line_is_dropped_and_a_damaged_one_named(run_dir, tmp_path, capsys):
    run = copy_of(run_dir, tmp_path / "cut")
    path = run / "metrics.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) - 15])  # a crash in the middle of the last line, before its checkpoint
    checkpoint.discard_after(run, 3)
    with pytest.warns(UserWarning, match="dropping the cut last line 6"):
        assert [r["generation"] for r in read_metrics_file(path)] == [1, 2, 3, 4, 5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert inspect_checkpoint.main([str(run)]) == 0
        train(TINY, run, resume=True)  # resumes: the history is rewritten without the cut line
    assert [r["generation"] for r in metrics(run)] == [1, 2, 3, 4, 5, 6]

    lines = text.splitlines()
    path.write_text("\n".join([lines[0], lines[1][:20], *lines[2:]]) + "\n")
    with pytest.raises(MetricsError, match=f"{path} line 2 is not valid JSON"):
        read_metrics_file(path)
    assert inspect_checkpoint.main([str(run)]) == 2
    assert "line 2 is not valid JSON" in capsys.readouterr().err


def test_a_fresh_start_clears_an_earlier_runs_best_checkpoint(tmp_path):
    run = tmp_path / "run"
    other = MetaTraining(TINY.replace(seed=5), make_mesh(8))
    checkpoint.save(run, 999, other.init(), other.config, kind=checkpoint.BEST)  # an earlier run's best
    train(TINY.replace(generations=3), run)
    best = load_run(run, best=True)
    assert best.step == 3 and best.config.seed == 0


@pytest.mark.slow
def test_a_damaged_latest_checkpoint_names_the_step_and_resumes_from_an_earlier_one(run_dir, tmp_path, capsys):
    run = copy_of(run_dir, tmp_path / "damaged")
    for f in (run / "checkpoints" / "6" / "state").rglob("*"):
        if f.is_file() and f.name != "_METADATA":
            f.write_bytes(b"garbage")
    failed = subprocess.run([sys.executable, str(ROOT / "launch" / "meta_train.py"), "--no-progress", "--run-dir",
                             str(run), "--resume", "--generations", "9", "--devices", "8"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1, failed.stderr  # one line: no asyncio tracebacks after it
    assert "checkpoint 6 in" in failed.stderr and "--resume --resume-from 3 (saved: 3)" in failed.stderr
    assert meta_train_cli.main(["--run-dir", str(run), "--resume", "--resume-from", "3", "--devices", "8",
                                "--no-progress"]) == 0
    assert checkpoint.saved_steps(run) == [3, 6]
    assert [r["generation"] for r in metrics(run)] == [1, 2, 3, 4, 5, 6]
    assert meta_train_cli.main(["--run-dir", str(run), "--resume", "--resume-from", "4", "--devices", "8"]) == 2
    assert "--resume-from 4: no such checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 0.0])
def test_non_finite_config_values_are_refused(value):
    with pytest.raises(ValueError, match="es: sigma must be positive and finite"):
        ESConfig(sigma=value)
    with pytest.raises(ValueError, match="lr must be positive and finite"):
        MetaTrainConfig(lr=value)


def test_a_non_finite_update_is_not_applied():
    old = {"w": jnp.ones(3), "step": jnp.int32(1)}
    new = {"w": jnp.array([1.0, jnp.inf, 2.0]), "step": jnp.int32(2)}
    assert int(guards.keep_if_finite(old, new)["step"]) == 1
    assert int(guards.keep_if_finite(old, {**new, "w": jnp.zeros(3)})["step"]) == 2
    assert int(guards.keep_if_finite(old, {**new, "w": jnp.zeros(3)}, jnp.array([jnp.nan]))["step"]) == 1


def test_a_diverging_run_stops_after_saving_its_last_finite_generation(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(guards.GuardError, match="generation 2 produced non-finite .* with generation 1 saved"):
        train(TINY.replace(lr=1e38), run)  # Adam's first step moves every parameter by ~1e38
    assert checkpoint.saved_steps(run) == [1]
    assert np.all(np.isfinite(np.concatenate([np.ravel(x) for x in jax.tree.leaves(load_run(run).meta_params)])))
    assert [r["generation"] for r in metrics(run)] == [1]
    assert meta_train_cli.main(tiny_args(tmp_path / "cli", lr="inf")) == 2
    assert "lr must be positive and finite" in capsys.readouterr().err


def test_a_generation_beyond_the_device_memory_is_refused_and_a_slow_one_announced(monkeypatch):
    training = MetaTraining(TINY, make_mesh(8))
    state = training.init()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guards.check_generation_budget(training, state)  # the tiny run fits and is quick
    monkeypatch.setattr(guards, "SLOW_GENERATION_S", 0.0)
    with pytest.warns(UserWarning, match="one generation is .* FLOPs: at least"):
        guards.check_generation_budget(training, state)
    monkeypatch.setattr(guards, "_memory_limit", lambda devices: (1 << 10, devices, "test memory"))
    with pytest.raises(guards.GuardError, match=r"one generation needs about .* but the test memory is"):
        guards.check_generation_budget(training, state)


@pytest.mark.parametrize("spec, message", [
    ("digits:permutations=-3", "permutations must be at least 0, got -3"),
    ("digits:classes=-2", "classes must be at least 0, got -2"),
    ("digits:project=-5", "project must be at least 0, got -5"),
    ("memorize:digits:items=0", "items must be at least 1, got 0"),
    ("ordered:digits:per_class=0", "per_class must be at least 1, got 0"),
    ("sum:dim=0", "dim must be at least 1, got 0"),
])
def test_task_options_out_of_range_are_refused(spec, message):
    with pytest.raises(ValueError, match=f"task '{spec}': {message}"):
        load_task(spec)


def test_command_line_values_out_of_range_are_one_line_errors(run_dir, tmp_path, capsys):
    def error(code: int) -> str:
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error: ") and "\n" not in err, err
        return err

    assert "--episode-length must be at least 1, got -5" in error(
        meta_test.main(["--run", str(run_dir), "--episode-length", "-5", "--no-progress"]))
    assert "--devices must be at least 1 (default: all 8), got 0" in error(
        meta_train_cli.main(tiny_args(tmp_path / "d") + ["--devices", "0"]))
    (tmp_path / "empty").mkdir()
    assert "holds no checkpoint to continue (the run saved none yet)" in error(
        meta_train_cli.main(["--run-dir", str(tmp_path / "empty"), "--resume"]))
    assert "(no such directory)" in error(meta_train_cli.main(["--run-dir", str(tmp_path / "mistyped"), "--resume"]))
    assert "has already trained 6 generations, more than --generations 4" in error(
        meta_train_cli.main(["--run-dir", str(run_dir), "--resume", "--generations", "4"]))
    assert "--resume-from needs --resume" in error(
        meta_train_cli.main(tiny_args(tmp_path / "d") + ["--resume-from", "3"]))


def test_a_run_dir_that_is_a_file_or_read_only_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "file").write_text("not a directory")
    assert meta_train_cli.main(tiny_args(tmp_path / "file")) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    if os.geteuid() == 0:
        pytest.skip("root writes to read-only directories")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert meta_train_cli.main(tiny_args(locked / "run")) == 2
    assert "permission denied" in capsys.readouterr().err


# --- XLA_FLAGS -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_tests_and_entry_points_work_whatever_xla_flags_holds():
    def run(flags: str, *command: str):
        return subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=300, cwd=ROOT,
                              env={**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": str(ROOT)})

    one_test = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_tasks.py::test_unknown_task_lists_the_known_ones")
    exported = run("--xla_force_host_platform_device_count=2", *one_test)  # what the README tells users to export
    assert exported.returncode == 0 and "1 passed" in exported.stdout, exported.stdout + exported.stderr
    bad = run("--no_such_xla_flag=1", *one_test)
    assert bad.returncode != 0 and "Unknown flag in XLA_FLAGS: --no_such_xla_flag=1" in bad.stdout + bad.stderr
    entry = run("--no_such_xla_flag=1", "launch/meta_train.py", "--list-tasks")
    assert entry.returncode == 1 and "error: XLA rejects XLA_FLAGS" in entry.stderr
    assert run("--xla_force_host_platform_device_count=3", "launch/meta_train.py", "--list-tasks").returncode == 0
