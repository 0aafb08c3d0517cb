#!/usr/bin/env python
"""What is in a run: config, saved steps, metrics, meta-parameters, sizes, optimizer state, environment.

    python launch/inspect_checkpoint.py runs/default
    python launch/inspect_checkpoint.py runs/default --json            # everything, machine-readable
    python launch/inspect_checkpoint.py runs/default --export params.npz --plot
    python launch/inspect_checkpoint.py runs/mnist7 --best --export-pretrained pretrained/vsml-mnist7
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch._cpu_devices import check_xla_flags  # noqa: E402

check_xla_flags()

import numpy as np  # noqa: E402

from metalearn import load_run  # noqa: E402
from metalearn.learners import TaskSpec, learner_sizes  # noqa: E402
from metalearn.training import checkpoint, pretrained  # noqa: E402
from metalearn.training.config import MetaTrainConfig  # noqa: E402
from metalearn.training.metrics import plot_training, read_metrics  # noqa: E402
from metalearn.training.pretrained import flatten  # noqa: E402
from metalearn.training.selection import describe_selection, run_selection  # noqa: E402


def describe(run) -> dict:
    records = read_metrics(run.run_dir)
    fitness = [r["train_fitness"] for r in records if r["generation"] <= run.step]
    fields = ("generation", "val_score", "test_score", "test_acc", "test_acc_last20")
    evals = [{k: r[k] for k in fields if k in r} for r in records if "test_acc" in r and r["generation"] <= run.step]
    params = flatten(run.meta_params)
    optimizer = flatten(run.state["es"]["opt_state"]) if run.state else {}  # a pretrained folder has none
    spec = run.info.get("task_spec")
    sizes = learner_sizes(run.learner, TaskSpec(**spec))._asdict() if spec else None
    return {
        "run_dir": str(run.run_dir), "step": run.step, "saved_steps": run.steps,
        "best": run_selection(run),
        "config": run.config.to_json(),
        "metrics": {"generations_logged": len(fitness),
                    "train_fitness": {"first": fitness[0], "best": min(fitness), "last": fitness[-1]} if fitness else None,
                    "meta_test": evals},
        "meta_parameters": {name: {"shape": list(a.shape), "count": int(a.size), "norm": float(np.linalg.norm(a))}
                            for name, a in params.items()},
        "sizes": {"task_spec": spec, **(sizes or {})},
        "outer": {**run.config.to_json()["outer"], "lr": run.config.lr, "optimizer": "adam",
               "adam_step": int(optimizer.get("0/count", np.array(-1))),
               "moment_norms": {m: float(math.sqrt(sum(float(np.sum(a**2)) for k, a in optimizer.items()
                                                     if k.startswith(f"0/{m}/")))) for m in ("mu", "nu")}},
        "environment": run.info.get("environment"),
    }


def print_human(d: dict) -> None:
    print(f"run {d['run_dir']} | checkpoint at generation {d['step']} | saved: {d['saved_steps']} | "
          f"{describe_selection(d['best'])}")
    print("config: " + ", ".join(f"{k}={v}" for k, v in MetaTrainConfig.from_json(d["config"]).flat().items()))
    m = d["metrics"]
    if m["train_fitness"]:
        f = m["train_fitness"]
        print(f"train fitness (cross-entropy): first {f['first']:.3f}, best {f['best']:.3f}, last {f['last']:.3f} "
              f"over {m['generations_logged']} generations")
    if m["meta_test"]:
        print("evaluations (val_score | meta-test score, whole-episode / last-20% accuracy): " + ", ".join(
            f"g{e['generation']} {e.get('val_score', float('nan')):.3f} | {e.get('test_score', float('nan')):.3f}, "
            f"{e['test_acc']:.3f}/{e['test_acc_last20']:.3f}" for e in m["meta_test"]))
    print("meta-parameters:")
    for name, p in d["meta_parameters"].items():
        print(f"  {name:<16}{str(tuple(p['shape'])):<12}{p['count']:>8,}   norm {p['norm']:.3f}")
    s = d["sizes"]
    if s.get("algorithm") is not None:
        spec = s["task_spec"]
        print(f"sizes on {spec['input_size']} inputs x {spec['num_classes']} classes: algorithm {s['algorithm']:,} "
              f"meta-parameters ({s['algorithm_bytes']:,} B), state {s['state']:,} floats per task "
              f"({s['state_bytes']:,} B), ratio algorithm/state {s['algorithm'] / max(s['state'], 1):.3g}")
    e = d["outer"]
    settings = ", ".join(f"{k} {v}" for k, v in e.items() if k not in ("name", "lr", "optimizer", "adam_step",
                                                                          "moment_norms"))
    print(f"{e['name']}: {settings}, Adam lr {e['lr']}, step {e['adam_step']}, "
          f"|mu| {e['moment_norms']['mu']:.3g}, |nu| {e['moment_norms']['nu']:.3g}")
    env = d["environment"]
    if env:
        packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
        print(f"environment: {env['device_count']} x {env['device_kind']} ({env['platform']}), python {env['python']}, "
              f"{packages}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--step", type=int, default=None, help="checkpoint to inspect (default: the latest)")
    p.add_argument("--best", action="store_true", help="the best checkpoint (highest val_score) instead")
    p.add_argument("--json", action="store_true", help="print everything as JSON")
    p.add_argument("--export", type=Path, default=None, help="write the meta-parameters to this .npz file")
    p.add_argument("--export-pretrained", type=Path, default=None, metavar="DIR", help="write the checkpoint as "
                   "a pretrained folder (meta-parameters, run.json, model card; at most 1 MB), e.g. pretrained/NAME")
    p.add_argument("--plot", action="store_true", help="(re)write RUN/training.png from metrics.jsonl")
    args = p.parse_args(argv)
    try:
        run = load_run(args.run_dir, args.step, best=args.best)
        d = describe(run)  # a damaged metrics.jsonl line is a ValueError naming file and line
        if args.export_pretrained:
            print(f"wrote {pretrained.export(run, args.export_pretrained, args.best)}", file=sys.stderr)
    except (ValueError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(d, indent=1)) if args.json else print_human(d)
    if args.export:
        np.savez(args.export, **flatten(run.meta_params))
        print(f"wrote {args.export}", file=sys.stderr)
    if args.plot:
        print(f"wrote {plot_training(run.run_dir)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
