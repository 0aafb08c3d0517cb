#!/usr/bin/env python
"""Meta-train a learning algorithm with seed-shared OpenAI-ES, the population sharded over devices.

    python launch/meta_train.py                       # VSML on the embedded 8x8 digits, all local devices
    python launch/meta_train.py --devices 8 --population 256 --run-dir runs/big
    python launch/meta_train.py --run-dir runs/big --resume   # continue from the last checkpoint
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from launch._cpu_devices import expose_cpu_cores  # noqa: E402

expose_cpu_cores()

import jax  # noqa: E402

from metalearn import checkpoint, es  # noqa: E402
from metalearn.config import MetaTrainConfig  # noqa: E402
from metalearn.learners import learner_sizes, step_flops  # noqa: E402
from metalearn.meta_train import MetaTraining, meta_train  # noqa: E402
from tasks import describe_tasks  # noqa: E402

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=None, help="devices to shard the population over (default: all)")
    p.add_argument("--run-dir", type=Path, default=None, help="where metrics and checkpoints go (default: runs/<time>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --run-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.add_argument("--data-dir", type=Path, default=None, help="where the datasets' IDX files are (sets METALEARN_DATA)")
    p.add_argument("--list-tasks", action="store_true", help="list every task, family and option, and exit")
    p.add_argument("--dry-run", action="store_true", help="print the config and the learner's sizes and FLOPs, "
                                                          "then exit without training")
    for field in dataclasses.fields(MetaTrainConfig):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, tuple):
            p.add_argument(flag, nargs="+", default=None, help=f"default: {' '.join(field.default)}")
        else:
            p.add_argument(flag, type=type(field.default), default=None, help=f"default: {field.default}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_tasks:
        print(describe_tasks())
        return 0
    if args.data_dir:
        os.environ["METALEARN_DATA"] = str(args.data_dir.absolute())
    overrides = {f.name: tuple(v) if isinstance(v, list) else v for f in dataclasses.fields(MetaTrainConfig)
                 if (v := getattr(args, f.name)) is not None}
    try:
        run_dir = args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        steps = checkpoint.saved_steps(run_dir)
        if steps and not args.resume:
            raise ValueError(f"{run_dir} already holds checkpoints (last: generation {steps[-1]}); "
                             f"pass --resume to continue it, or choose another --run-dir.")
        if args.resume and steps:
            saved = checkpoint.load_config(run_dir, steps[-1])
            changed = {k: v for k, v in overrides.items() if k != "generations" and getattr(saved, k) != v}
            if changed:
                raise ValueError(f"--resume continues the saved config; only --generations may change, "
                                 f"but these differ from it: {changed}")
            config = saved.replace(**{k: v for k, v in overrides.items() if k == "generations"})
        else:
            config = MetaTrainConfig(**overrides)
        num_devices = args.devices or len(jax.devices())
        mesh = es.make_mesh(num_devices)
        if config.outer == "es":
            es.check_population(config.population, num_devices)
        elif config.episodes_per_member % num_devices:
            raise ValueError(f"--outer backprop splits each task's --episodes-per-member ({config.episodes_per_member}) "
                             f"over {num_devices} devices: use a multiple of {num_devices}, or --devices 1.")
        training = MetaTraining(config, mesh)
        sizes = learner_sizes(training.learner, training.spec)
        print(f"run dir {run_dir} | {num_devices} {jax.devices()[0].platform} device(s) | {config.learner} on "
              f"{' '.join(config.train_tasks)} -> {' '.join(config.test_tasks)}: algorithm {sizes.algorithm:,} "
              f"meta-parameters, state {sizes.state:,} floats/task, "
              f"{step_flops(training.learner, training.spec):,.0f} FLOPs/step"
              + (f" | resuming at generation {steps[-1]}" if args.resume and steps else ""))
        if args.dry_run:
            print(json.dumps(config.to_json(), indent=1))
            return 0
        meta_train(training, run_dir, resume=args.resume, progress=not args.no_progress)
    except (ValueError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"done: metrics in {run_dir / 'metrics.jsonl'}, checkpoints in {run_dir / 'checkpoints'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
