#!/usr/bin/env python
"""Meta-train a learning algorithm with seed-shared OpenAI-ES, the population sharded over devices.

    python launch/meta_train.py                       # VSML on the embedded 8x8 digits, all local devices
    python launch/meta_train.py --devices 8 --population 256 --run-dir runs/big
    python launch/meta_train.py --run-dir runs/big --resume   # continue from the last checkpoint

Several processes, one run (jax.distributed; every process gets the same arguments and a shared --run-dir):

    python launch/meta_train.py --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0 ...  # on host 0
    python launch/meta_train.py --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 1 ...  # on host 1
    srun python launch/meta_train.py --distributed ...   # SLURM / Open MPI: detected
    python launch/local_cluster.py --processes 2 --devices-per-process 4 ...   # try it on one machine
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

from metalearn.learners import learner_sizes, step_flops  # noqa: E402
from metalearn.outer import OUTER  # noqa: E402
from metalearn.outer.mesh import make_mesh  # noqa: E402
from metalearn.training import checkpoint, distributed  # noqa: E402
from metalearn.training.config import MetaTrainConfig  # noqa: E402
from metalearn.training.loop import MetaTraining, meta_train  # noqa: E402
from tasks import describe_tasks  # noqa: E402

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=None, help="devices to shard the population over (default: all)")
    p.add_argument("--run-dir", type=Path, default=None, help="where metrics and checkpoints go (default: runs/<time>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --run-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.add_argument("--data-dir", type=Path, default=None, help="where the datasets' IDX files are (sets METALEARN_DATA)")
    p.add_argument("--list-tasks", action="store_true", help="list every task, family and option, and exit")
    p.add_argument("--distributed", action="store_true", help="join a multi-process run, detecting coordinator, "
                   "process count and id from the environment (SLURM, Open MPI)")
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT", help="multi-process run: process 0's "
                   "address and a free port (with --num-processes and --process-id)")
    p.add_argument("--num-processes", type=int, default=None, help="multi-process run: how many processes")
    p.add_argument("--process-id", type=int, default=None, help="multi-process run: this process, 0..N-1")
    p.add_argument("--init-timeout", type=int, default=300, metavar="SECONDS",
                   help="multi-process run: give up joining after this long (default: 300)")
    p.add_argument("--dry-run", action="store_true", help="print the config and the learner's sizes and FLOPs, "
                                                          "then exit without training")
    p.add_argument("--outer", choices=sorted(OUTER), default=None, help="outer optimizer (default: es)")
    for field in config_fields():
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, tuple):
            p.add_argument(flag, nargs="+", default=None, help=f"default: {' '.join(field.default)}")
        else:
            kind = auto_or_int if field.default == "auto" else type(field.default)
            p.add_argument(flag, type=kind, default=None, help=f"default: {field.default}")
    return p.parse_args(argv)


def auto_or_int(text: str) -> int | str:
    """A flag that is 'auto' or a number (ES --chunk)."""
    return text if text == "auto" else int(text)


def chunk_note(config: MetaTrainConfig, training: MetaTraining) -> str:
    """' | chunk N pairs/device' for an outer optimizer with a chunk, '(auto)' when it was chosen here."""
    chunk = getattr(training.outer_config, "chunk", None)
    if chunk is None:
        return ""
    return f" | chunk {chunk} pairs/device" + (" (auto)" if getattr(config.outer, "chunk", None) == "auto" else "")


def config_fields() -> list[dataclasses.Field]:
    """One flag per config field, the outer optimizers' settings flat beside the others (--population)."""
    outer = [f for cls in OUTER.values() for f in dataclasses.fields(cls)]
    return [f for f in dataclasses.fields(MetaTrainConfig) if f.name != "outer"] + outer


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_tasks:
        print(describe_tasks())
        return 0
    if args.data_dir:
        os.environ["METALEARN_DATA"] = str(args.data_dir.absolute())
    overrides = {f.name: tuple(v) if isinstance(v, list) else v for f in config_fields()
                 if (v := getattr(args, f.name)) is not None}
    if args.outer:
        overrides["outer"] = args.outer
    explicit = (args.coordinator, args.num_processes, args.process_id)
    try:
        if args.distributed or any(v is not None for v in explicit):
            if args.distributed and any(v is not None for v in explicit):
                raise ValueError("--distributed detects the coordinator, process count and id; do not also pass "
                                 "--coordinator, --num-processes or --process-id.")
            distributed.initialize(*explicit, timeout_s=args.init_timeout)  # before anything touches JAX
            if args.run_dir is None:
                raise ValueError("a multi-process run needs --run-dir (one directory every process can reach)")
        main_process = distributed.is_main()
        run_dir = args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        steps = checkpoint.saved_steps(run_dir)
        if steps and not args.resume:
            raise ValueError(f"{run_dir} already holds checkpoints (last: generation {steps[-1]}); "
                             f"pass --resume to continue it, or choose another --run-dir.")
        if args.resume and steps:
            saved = checkpoint.load_config(run_dir, steps[-1])
            changed = {k: v for k, v in overrides.items() if k != "generations" and saved.flat().get(k) != v}
            if changed:
                raise ValueError(f"--resume continues the saved config; only --generations may change, "
                                 f"but these differ from it: {changed}")
            config = saved.replace(**{k: v for k, v in overrides.items() if k == "generations"})
        else:
            config = MetaTrainConfig.from_flat(overrides)
        distributed.check_same_config(config.dumps())
        if jax.process_count() > 1 and args.devices not in (None, len(jax.devices())):
            raise ValueError(f"with {jax.process_count()} processes the mesh spans all {len(jax.devices())} "
                             f"devices of all processes; leave out --devices")
        num_devices = args.devices or len(jax.devices())
        mesh = make_mesh(num_devices)
        training = MetaTraining(config, mesh)
        sizes = learner_sizes(training.learner, training.spec)
        processes = f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""
        if main_process:
            print(f"run dir {run_dir} | {num_devices} {jax.devices()[0].platform} device(s){processes} | "
                  f"{config.learner} on {' '.join(config.train_tasks)} -> {' '.join(config.test_tasks)}: algorithm "
                  f"{sizes.algorithm:,} meta-parameters, state {sizes.state:,} floats/task, "
                  f"{step_flops(training.learner, training.spec):,.0f} FLOPs/step" + chunk_note(config, training)
                  + (f" | resuming at generation {steps[-1]}" if args.resume and steps else ""))
        if args.dry_run:
            if main_process:
                print(json.dumps(config.to_json(), indent=1))
            return 0
        meta_train(training, run_dir, resume=args.resume, progress=not args.no_progress)
    except (ValueError, checkpoint.CheckpointError, distributed.DistributedError) as err:
        who = f"process {jax.process_index()}: " if jax.distributed.is_initialized() else ""
        print(f"error: {who}{err}", file=sys.stderr)
        return 2
    if main_process:
        print(f"done: metrics in {run_dir / 'metrics.jsonl'}, checkpoints in {run_dir / 'checkpoints'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
