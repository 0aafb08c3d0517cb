#!/usr/bin/env python
"""Meta-test a trained learning algorithm on tasks, beside hand-designed learners on the same episodes.

    python launch/meta_test.py --run runs/default                      # latest checkpoint, the run's tasks
    python launch/meta_test.py --run runs/default --step 350 --episodes 256 --baselines sgd class_mean
    python launch/meta_test.py --run pretrained/vsml-mnist7          # a pretrained folder (its one checkpoint)
    python launch/meta_test.py --run runs/a_s0 runs/a_s1 runs/a_s2 --best --out runs/a_meta_test   # seeds

Prints a table of the four axes (algorithm size, state size, FLOPs per step, accuracy with a 95% interval)
and writes results.csv, results.json and one curves_<task>.png per task to RUN/meta_test/ (or --out; for a
pretrained folder runs/pretrained/<name>/meta_test/, so the shipped folder stays as it was). With several
runs (seeds of one configuration: the same learner) each is scored on the same episodes, and a second table
gives the learned algorithm's mean score with its 95% t-interval over the runs beside the baselines.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch._cpu_devices import expose_cpu_cores  # noqa: E402

expose_cpu_cores()  # before anything imports jax or the task modules

from launch._compile_cache import cache_compiled_programs  # noqa: E402

cache_compiled_programs()

import jax  # noqa: E402

from metalearn import load_run  # noqa: E402
from metalearn.experiments.report import (format_seed_table, format_table, plot_curves, seed_rows,  # noqa: E402
                                          write_results)
from metalearn.learners import TaskSpec, check_task_fits, learner_sizes, make_learner, step_flops  # noqa: E402
from metalearn.outer.mesh import make_mesh  # noqa: E402
from metalearn.rollout.evaluation import evaluate, summary  # noqa: E402
from metalearn.training import checkpoint, keys, pretrained  # noqa: E402
from metalearn.training.selection import describe_selection, run_selection  # noqa: E402
from tasks import load_task  # noqa: E402
from tasks.trust import ALLOW_FLAG, only_trusted  # noqa: E402

DEFAULT_BASELINES = ("sgd", "adam", "mlp_sgd", "knn", "class_mean")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, nargs="+", required=True, help="a meta_train.py run directory or a "
                   "pretrained folder; several: seeds of one configuration, summarized over runs")
    p.add_argument("--step", type=int, default=None, help="checkpoint to load (default: the latest)")
    p.add_argument("--best", action="store_true", help="load the best checkpoint (highest val_score, chosen on "
                                                       "validation tasks, never on meta-test ones)")
    p.add_argument("--tasks", nargs="+", default=None, help="task specs (default: the run's meta-test tasks)")
    p.add_argument("--data-dir", type=Path, default=None, help="where the datasets' IDX files are (sets METALEARN_DATA)")
    p.add_argument("--episodes", type=int, default=128)
    p.add_argument("--episode-length", type=int, default=None, help="default: the run's")
    p.add_argument("--baselines", nargs="*", default=list(DEFAULT_BASELINES), help="hand-designed learners")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="default: RUN/meta_test (required with several runs)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(ALLOW_FLAG, action="store_true", help="run user tasks (module:function) that the run's "
                   "config names: only for runs whose code you trust")
    return p.parse_args(argv)


# Seeds of one configuration may differ in these: the seed, when and how long the runs were recorded, and
# the warm start's path (each seed of a two-stage recipe starts from its own first stage).
SEED_FIELDS = ("seed", "generations", "eval_every", "checkpoint_every", "init_from")


def check_seeds(runs: list, args: argparse.Namespace) -> None:
    """Several runs are summarized over runs only as seeds of one configuration, at comparable checkpoints."""
    if args.out is None:
        raise ValueError("several runs are scored into one table: name its folder with --out")
    if len({r.run_dir.resolve() for r in runs}) < len(runs):
        raise ValueError("a run is listed twice: give each seed's run once")
    first = {k: v for k, v in runs[0].config.to_json().items() if k not in SEED_FIELDS}
    for r in runs[1:]:
        config = {k: v for k, v in r.config.to_json().items() if k not in SEED_FIELDS}
        differ = sorted(k for k in first if first[k] != config.get(k))
        if differ:
            raise ValueError(f"several runs must be seeds of one configuration, but {r.run_dir} differs from "
                             f"{runs[0].run_dir} in {', '.join(differ)}; score them separately")
    if not (args.best or args.step) and not all(pretrained.is_pretrained(r.run_dir) for r in runs):
        raise ValueError("several runs are compared at their selected checkpoints: add --best (a pretrained "
                         "folder is always its selected one; a run directory's latest checkpoint is not)")


def main(argv: list[str] | None = None) -> int:
    from tqdm import tqdm

    args = parse_args(argv)
    if args.data_dir:
        os.environ["METALEARN_DATA"] = str(args.data_dir.absolute())
    try:
        if args.episodes < 2:
            raise ValueError("--episodes must be at least 2 (the 95% interval needs two episodes)")
        if args.episode_length is not None and args.episode_length < 1:
            raise ValueError(f"--episode-length must be at least 1, got {args.episode_length}")
        runs = [load_run(path, args.step, best=args.best) for path in args.run]
        run = runs[0]
        if len(runs) > 1:
            check_seeds(runs, args)
        length = args.episode_length or run.config.episode_length
        task_names = args.tasks or list(run.config.test_tasks)
        names = [r.run_dir.name for r in runs]
        labels_by_name = len(set(names)) == len(names)  # else the paths tell them apart
        learned = {(f"learned ({r.config.learner})" if len(runs) == 1 else
                    f"learned ({r.run_dir.name if labels_by_name else r.run_dir})"): r for r in runs}
        labels = [*learned, *args.baselines]
        for spec in args.baselines:
            make_learner(spec)  # fail early on a bad spec
        with only_trusted(args.tasks or (), allow_all=args.allow_user_tasks):
            tasks = [(name, load_task(name).test) for name in task_names]
        for (_, task), r in ((t, r) for t in tasks for r in runs):
            check_task_fits(r.learner, r.meta_params, task)
    except (ValueError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    shipped = pretrained.is_pretrained(run.run_dir)
    out_dir = args.out or (Path("runs") / "pretrained" / run.run_dir.name if shipped else run.run_dir) / "meta_test"
    rows, curves = [], {}
    key, mesh = keys.evaluation(args.seed), make_mesh(len(jax.devices()))  # the episodes split over all devices

    @functools.cache  # one compiled evaluation per learner: the seeds of a configuration share it
    def evaluator(learner, batch: int):
        return jax.jit(lambda p, t: evaluate(learner, p, t, key, args.episodes, length, batch, mesh))

    jobs = [(t, l) for t in tasks for l in labels]
    bar = tqdm(jobs, disable=args.no_progress, unit="eval", desc="meta-test")
    for (name, task), label in bar:
        bar.set_postfix_str(f"{name} / {label}")
        mine = learned.get(label)
        learner, meta_params, batch = (mine.learner, mine.meta_params, mine.config.inner_batch) if mine \
            else (make_learner(label), {}, 1)
        spec = TaskSpec.of(task, length)
        result = evaluator(learner, batch)(meta_params, task)
        sizes = learner_sizes(learner, spec)
        rows.append({"task": name, "learner": label, "algorithm_size": sizes.algorithm, "state_size": sizes.state,
                     "flops_per_step": step_flops(learner, spec), **summary(result)})
        curves.setdefault(name, {})[label] = {"acc": result.acc_curve.tolist(), "acc_ci": result.acc_curve_ci.tolist(),
                                              "loss": result.loss_curve.tolist()}
    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = [plot_curves(out_dir, name, curves[name]) for name, _ in tasks]
    selections = [run_selection(r) if args.best or pretrained.is_pretrained(r.run_dir) else None for r in runs]
    meta = {"run": str(run.run_dir), "step": run.step, "split": "test", "episodes": args.episodes,
            "episode_length": length, "seed": args.seed, "config": run.config.to_json(), "selection": selections[0]}
    if len(runs) > 1:
        meta["runs"] = [{"run": str(r.run_dir), "step": r.step, "seed": r.config.seed, "selection": selection}
                        for r, selection in zip(runs, selections)]
        meta["over_runs"] = seed_rows(rows, list(learned))
    outputs += write_results(out_dir, rows, curves, meta)
    chosen = [f"{r.run_dir} at generation {r.step}" + (f" ({describe_selection(sel)})" if sel else "")
              for r, sel in zip(runs, selections)]
    print("; ".join(chosen) + f": {args.episodes} episodes of {length} steps per task on its test split; "
          f"score = query accuracy on streams, whole-episode online accuracy otherwise")
    print(format_table(rows))
    if len(runs) > 1:
        print(f"\nover the {len(runs)} runs (the same episodes for every learner):")
        print(format_seed_table(meta["over_runs"]))
    print("wrote " + ", ".join(str(p) for p in outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
