#!/usr/bin/env python
"""The size-ratio experiment: meta-train a grid of learners x numbers of tasks x seeds, then report.

    python launch/sweep.py run --preset cpu --out runs/sweep_cpu     # 2 CPU cores: about 1 hour
    python launch/sweep.py run --out runs/sweep_cpu                  # resume: finished points are kept
    python launch/sweep.py report runs/sweep_cpu                     # table (CSV, Markdown), plots, archive
    python launch/sweep.py restore sweep_results.json --out runs/sweep_cpu   # a report's archive: its points back
    python launch/sweep.py show cpu > my_sweep.json                  # a preset as JSON, to edit
    python launch/sweep.py run --config my_sweep.json --out runs/mine --workers 4

Each point runs in its own process on one device (pinned to one CPU core, or given one GPU with --gpus),
`--workers` at a time; its log is points/<id>/log.txt. A killed sweep resumes where it stopped: points
with a result are never rerun, partly trained ones continue from their last checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from launch._compile_cache import cache_compiled_programs  # noqa: E402
from launch._cpu_devices import check_xla_flags  # noqa: E402
from metalearn.experiments import sweep as sw  # noqa: E402
from metalearn.experiments.presets import PRESETS  # noqa: E402
from metalearn.training import runlock  # noqa: E402
from metalearn.training.interrupt import Interrupted  # noqa: E402
from tasks.trust import ALLOW_FLAG, only_trusted  # noqa: E402

DEVICE_FLAG = "--xla_force_host_platform_device_count"
PIN_VAR = "METALEARN_SWEEP_CORE"  # set for a worker: the CPU core it runs on


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) a sweep")
    source = run.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=sorted(PRESETS), help="a built-in sweep")
    source.add_argument("--config", type=Path, help="a sweep config JSON (see `show`)")
    run.add_argument("--out", type=Path, required=True, help="the sweep directory (created, or resumed)")
    run.add_argument("--workers", type=int, default=None, help="points run at once (default: one per GPU "
                     "with --gpus, else one per CPU core this process may use)")
    run.add_argument("--gpus", type=int, default=0, help="give worker i GPU i mod N (CUDA_VISIBLE_DEVICES); "
                     "0: CPU, each worker pinned to one core")
    run.add_argument("--data-dir", type=Path, default=None, help="where the datasets' IDX files are")
    run.add_argument("--dry-run", action="store_true", help="list the points and their state, run nothing")
    run.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    trust_help = "run user tasks (module:function) that the sweep config names: only for code you trust"
    run.add_argument(ALLOW_FLAG, action="store_true", help=trust_help)
    report = sub.add_parser("report", help="table and plots of a sweep directory")
    report.add_argument("sweep_dir", type=Path)
    restore = sub.add_parser("restore", help="rebuild a sweep directory's finished points from a report's "
                             "sweep_results.json, so that `run --out` trains only the missing ones")
    restore.add_argument("archive", type=Path, help="a sweep_results.json written by `report`")
    restore.add_argument("--out", type=Path, required=True, help="the sweep directory (created if absent)")
    show = sub.add_parser("show", help="print a preset as JSON")
    show.add_argument("preset", choices=sorted(PRESETS))
    job = sub.add_parser("job", help=argparse.SUPPRESS)  # one point (or the baselines) in a worker process
    job.add_argument("sweep_dir", type=Path)
    job.add_argument("job_id")
    job.add_argument(ALLOW_FLAG, action="store_true")
    return p.parse_args(argv)


def _prepare(args: argparse.Namespace) -> sw.SweepConfig:
    """The sweep's config: a new one is written to OUT/sweep.json (not by --dry-run); a resumed one must not
    have changed (compared as JSON text, so reordering the unseen tasks counts as a change)."""
    stored = args.out / "sweep.json"
    if not (args.preset or args.config):
        return sw.load_sweep(args.out)
    try:
        data = PRESETS[args.preset] if args.preset else json.loads(args.config.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read the sweep config {args.config}: {err}") from None
    sweep = sw.SweepConfig.from_json(data)
    sw.check_same_sweep(args.out, sweep, f"preset {args.preset}" if args.preset else args.config)
    if not args.dry_run:
        args.out.mkdir(parents=True, exist_ok=True)
        sw.write_json_atomic(stored, sweep.to_json())
    return sweep


def _check_tasks(sweep: sw.SweepConfig) -> None:
    """Every meta-training task level loads, and every available unseen task fits its shape; unseen tasks
    whose data is missing are announced. Runs on the CPU: this process must not hold GPU memory."""
    import jax

    jax.config.update("jax_platforms", "cpu")
    from tasks import check_same_shape, load_task

    levels = {f"task level {level.label!r}": load_task(level.spec).train for level in sweep.tasks}
    for label, task in sw.load_unseen(sweep).items():
        if isinstance(task, str):
            print(f"warning: unseen task {label!r} is skipped in this sweep: {task}", file=sys.stderr)
            continue
        for level, level_task in levels.items():
            check_same_shape({level: level_task, f"unseen task {label!r} ({sweep.unseen[label]})": task})


def _worker_env(slot: int, gpus: int, workers: int) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_FLAG)]
    env["XLA_FLAGS"] = " ".join([*flags, f"{DEVICE_FLAG}=1"])  # one device per point
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
        if workers > gpus:  # several points share a GPU: none may grab most of its memory up front
            env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    return env


def _run_jobs(args: argparse.Namespace, jobs: list[str]) -> list[str]:
    """Run the jobs in worker processes, `--workers` at a time; returns the ones that failed."""
    from tqdm import tqdm

    slots, lock, failed = list(range(args.workers)), threading.Lock(), []
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    bar = tqdm(total=len(jobs), unit="point", dynamic_ncols=True)

    def run(job: str) -> None:
        with lock:
            slot = slots.pop()
        log = (args.out / "baselines.log") if job == sw.BASELINES_JOB else sw.point_dir(args.out, job) / "log.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = _worker_env(slot, args.gpus, args.workers)
        if not args.gpus and cores and args.workers <= len(cores):
            env[PIN_VAR] = str(cores[slot])  # the worker pins itself (no fork-time hooks in a threaded parent)
        code = -1
        try:
            with log.open("a") as out:
                trust = [ALLOW_FLAG] if args.allow_user_tasks else []
                code = subprocess.run([sys.executable, __file__, "job", *trust, "--", str(args.out), job], stdout=out,
                                      stderr=subprocess.STDOUT, env=env).returncode
        finally:
            with lock:
                slots.append(slot)
                if code != 0:
                    failed.append(job)
                    tqdm.write(f"failed: {job} (exit {code}); see {log}")
                bar.update()
                bar.set_postfix(last=job, failed=len(failed))

    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(run, jobs))
    bar.close()
    return failed


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_sweep(args: argparse.Namespace) -> int:
    check_xla_flags()  # the workers inherit XLA_FLAGS
    args.workers = args.workers or args.gpus or _usable_cores()
    if args.workers < 1 or args.gpus < 0:
        raise ValueError(f"--workers must be at least 1 and --gpus at least 0, got {args.workers} and {args.gpus}")
    if args.data_dir:
        os.environ["METALEARN_DATA"] = str(args.data_dir.absolute())
    sweep = _prepare(args)
    _check_tasks(sweep)
    with contextlib.nullcontext() if args.dry_run else runlock.hold(args.out, what="sweep"):
        return _schedule(args, sweep)


def _schedule(args: argparse.Namespace, sweep: sw.SweepConfig) -> int:
    jobs = [sw.BASELINES_JOB] + [p.id for p in sweep.points()]
    pending = [job for job in jobs if not sw.is_done(args.out, job)]
    started = [job for job in pending if job != sw.BASELINES_JOB and (sw.point_dir(args.out, job) / "run").exists()]
    print(f"sweep {sweep.name!r} in {args.out}: {len(jobs) - 1} points + baselines; {len(jobs) - len(pending)} "
          f"done, {len(pending)} to run ({len(started)} partly trained, resumed), {args.workers} at a time")
    if args.dry_run:
        for job in jobs:
            state = "done" if job not in pending else "resume" if job in started else "pending"
            print(f"  {state:<8}{job}")
        return 0
    failed = _run_jobs(args, pending)
    code = 0 if args.no_report or not any(sw.is_done(args.out, p.id) for p in sweep.points()) else report(args.out)
    if failed:
        print(f"{len(failed)} job(s) failed: {', '.join(failed)}; the report covers the finished points; fix the "
              f"cause (see each job's log) and rerun the same command to resume", file=sys.stderr)
        return 1
    return code


def report(sweep_dir: Path) -> int:
    from metalearn.experiments.sweep_report import write_report

    for path in write_report(sweep_dir):
        print(f"wrote {path}")
    print((sweep_dir / "sweep_table.md").read_text())
    return 0


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker when the sweep process dies, so a killed sweep leaves no point training
    (the worker saves a checkpoint and stops; meta_train's lock keeps a rerun off a point still saving)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def run_job(sweep_dir: Path, job_id: str) -> int:
    _die_with_parent()
    if os.environ.get(PIN_VAR) and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(os.environ[PIN_VAR])})
    if DEVICE_FLAG not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {DEVICE_FLAG}=1".strip()
    if job_id == sw.BASELINES_JOB:
        result = sw.run_baselines(sweep_dir)
        print(json.dumps({name: r["spec"] for name, r in result.items() if name != "tuned_on"}))
    else:
        result = sw.run_point(sweep_dir, job_id)
        print(json.dumps({k: v for k, v in result.items() if k != "scores"}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cache_compiled_programs()  # set here, inherited by the workers
    try:
        if args.command == "show":
            print(json.dumps(PRESETS[args.preset], indent=1))
            return 0
        if args.command == "report":
            return report(args.sweep_dir)
        if args.command == "restore":
            with runlock.hold(args.out, what="sweep"):
                written = sw.restore(args.out, args.archive)
            print(f"restored {written} finished point(s) into {args.out}; `launch/sweep.py run --out {args.out}` "
                  f"runs the rest")
            return 0
        with only_trusted((), allow_all=args.allow_user_tasks):  # a sweep config is a file: its tasks are not typed
            return run_job(args.sweep_dir, args.job_id) if args.command == "job" else run_sweep(args)
    except Interrupted as stop:
        print(stop, file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # Ctrl-C reaches the workers too: each saves its point before the pool drains
        print("interrupted: running points saved a checkpoint; rerun the same command to resume", file=sys.stderr)
        return 130
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
