#!/usr/bin/env python
"""Meta-train a learning algorithm with seed-shared OpenAI-ES, the population sharded over devices.

    python launch/meta_train.py                       # VSML on the embedded 8x8 digits, all local devices
    python launch/meta_train.py --devices 8 --population 256 --run-dir runs/big
    python launch/meta_train.py --run-dir runs/big --resume   # continue from the last checkpoint
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from launch._cpu_devices import expose_cpu_cores  # noqa: E402

expose_cpu_cores()

import jax  # noqa: E402

from metalearn import checkpoint, es  # noqa: E402
from metalearn.config import MetaTrainConfig  # noqa: E402
from metalearn.learners import TaskSpec, learner_sizes, make_learner, step_flops  # noqa: E402
from metalearn.meta_train import meta_train  # noqa: E402
from tasks import load_task  # noqa: E402

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=None, help="devices to shard the population over (default: all)")
    p.add_argument("--run-dir", type=Path, default=None, help="where metrics and checkpoints go (default: runs/<time>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --run-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    for field in dataclasses.fields(MetaTrainConfig):
        flag = "--" + field.name.replace("_", "-")
        p.add_argument(flag, type=type(field.default), default=None, help=f"default: {field.default}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(MetaTrainConfig)
                 if getattr(args, f.name) is not None}
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
        es.check_population(config.population, num_devices)
        learner = make_learner(config.learner)
        task = load_task(config.task).train
        spec = TaskSpec(task.input_size, task.num_classes)
        sizes = learner_sizes(learner, spec)
        print(f"run dir {run_dir} | {num_devices} {jax.devices()[0].platform} device(s) | {config.learner} on "
              f"{config.task}: algorithm {sizes.algorithm:,} meta-parameters, state {sizes.state:,} floats/task, "
              f"{step_flops(learner, spec):,.0f} FLOPs/step"
              + (f" | resuming at generation {steps[-1]}" if args.resume and steps else ""))
        meta_train(config, mesh, run_dir, resume=args.resume, progress=not args.no_progress)
    except (ValueError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"done: metrics in {run_dir / 'metrics.jsonl'}, checkpoints in {run_dir / 'checkpoints'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
