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
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from launch._cpu_devices import expose_cpu_cores  # noqa: E402

expose_cpu_cores()  # before anything imports jax or the task modules

from launch._compile_cache import cache_compiled_programs  # noqa: E402

cache_compiled_programs()

import jax  # noqa: E402
from jax.sharding import Mesh  # noqa: E402
from metalearn.learners import learner_sizes, step_flops  # noqa: E402
from metalearn.outer import OUTER  # noqa: E402
from metalearn.outer.mesh import make_mesh  # noqa: E402
from metalearn.training import checkpoint, distributed, runlock  # noqa: E402
from metalearn.training.config import MetaTrainConfig  # noqa: E402
from metalearn.training.interrupt import Interrupted  # noqa: E402
from metalearn.training.loop import MetaTraining, meta_train  # noqa: E402
from tasks import describe_tasks  # noqa: E402
from tasks.trust import ALLOW_FLAG, only_trusted  # noqa: E402

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=None, help="devices to shard the population over (default: all)")
    p.add_argument("--run-dir", type=Path, default=None, help="where metrics and checkpoints go (default: runs/<time>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --run-dir")
    p.add_argument("--resume-from", type=int, default=None, metavar="STEP", help="with --resume: continue from "
                   "this saved generation instead (e.g. when the last checkpoint is damaged); later ones are deleted")
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
    p.add_argument(ALLOW_FLAG, action="store_true", help="--resume: run user tasks (module:function) that the "
                   "saved config names: only for runs whose code you trust")
    p.add_argument("--dry-run", action="store_true", help="print the config and the learner's sizes and FLOPs, "
                                                          "then exit without training")
    p.add_argument("--outer", choices=sorted(OUTER), default=None, help="outer optimizer (default: es)")
    for field in config_fields():
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, tuple):
            p.add_argument(flag, nargs="+" if field.default else "*", default=None,
                           help=f"default: {' '.join(field.default) or 'the --train-tasks, on their validation slices'}")
        else:
            kind = auto_or_int if field.default == "auto" else type(field.default)
            about = field.metadata.get("help", "")
            default = "none" if field.default == "" else field.default
            p.add_argument(flag, type=kind, default=None, help=(about + "; " if about else "") + f"default: {default}")
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


def resolve_config(args: argparse.Namespace, overrides: dict, run_dir: Path) -> tuple[MetaTrainConfig, int]:
    """The config to train and the generation it resumes at (0: a fresh start)."""
    runlock.check_run_dir(run_dir)
    steps = checkpoint.saved_steps(run_dir)
    if args.resume_from is not None and not args.resume:
        raise ValueError("--resume-from needs --resume")
    if steps and not args.resume:
        raise ValueError(f"{run_dir} already holds checkpoints (last: generation {steps[-1]}); "
                         f"pass --resume to continue it, or choose another --run-dir.")
    if not args.resume:
        return MetaTrainConfig.from_flat(overrides), 0
    if not steps:
        raise ValueError(f"--resume: {run_dir} holds no checkpoint to continue"
                         + (" (the run saved none yet)" if run_dir.is_dir() else " (no such directory)")
                         + "; check the path, or drop --resume to start a fresh run there.")
    step = checkpoint.resume_step(run_dir, steps, args.resume_from)
    saved = checkpoint.load_config(run_dir, step, steps=steps)
    changed = {k: v for k, v in overrides.items() if k != "generations" and saved.flat().get(k) != v}
    if changed:
        raise ValueError(f"--resume continues the saved config; only --generations may change, "
                         f"but these differ from it: {changed}")
    config = saved.replace(**{k: v for k, v in overrides.items() if k == "generations"})
    if config.generations < step:
        raise ValueError(f"--resume: {run_dir} has already trained {step} generations, more than --generations "
                         f"{config.generations}; pass a larger --generations to continue it.")
    return config, step


def mesh_for(devices: int | None) -> Mesh:
    """The mesh --devices asks for (default: every device of every process); the outer optimizer checks
    the config against its size (MetaTraining)."""
    if devices is not None and devices < 1:
        raise ValueError(f"--devices must be at least 1 (default: all {len(jax.devices())}), got {devices}")
    if jax.process_count() > 1 and devices not in (None, len(jax.devices())):
        raise ValueError(f"with {jax.process_count()} processes the mesh spans all {len(jax.devices())} "
                         f"devices of all processes; leave out --devices")
    return make_mesh(devices or len(jax.devices()))


def join_processes(args: argparse.Namespace) -> None:
    """A multi-process run joins its processes here, before anything touches JAX."""
    explicit = (args.coordinator, args.num_processes, args.process_id)
    if args.distributed or any(v is not None for v in explicit):
        if args.distributed and any(v is not None for v in explicit):
            raise ValueError("--distributed detects the coordinator, process count and id; do not also pass "
                             "--coordinator, --num-processes or --process-id.")
        distributed.initialize(*explicit, timeout_s=args.init_timeout)
        if args.run_dir is None:
            raise ValueError("a multi-process run needs --run-dir (one directory every process can reach)")


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
    typed_tasks = overrides.get("train_tasks", ()) + overrides.get("test_tasks", ())
    try:
        join_processes(args)
        main_process = distributed.is_main()
        run_dir = args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        config, start = resolve_config(args, overrides, run_dir)
        distributed.check_same_config(config.dumps())
        mesh = mesh_for(args.devices)
        num_devices = mesh.devices.size
        with only_trusted(typed_tasks, allow_all=args.allow_user_tasks):
            training = MetaTraining(config, mesh)
        sizes = learner_sizes(training.learner, training.spec)
        processes = f" in {jax.process_count()} processes" if jax.process_count() > 1 else ""
        if main_process:
            print(f"run dir {run_dir} | {num_devices} {jax.devices()[0].platform} device(s){processes} | "
                  f"{config.learner} on {' '.join(config.train_tasks)} -> {' '.join(config.test_tasks)}: algorithm "
                  f"{sizes.algorithm:,} meta-parameters, state {sizes.state:,} floats/task, "
                  f"{step_flops(training.learner, training.spec):,.0f} FLOPs/step" + chunk_note(config, training)
                  + (f" | resuming at generation {start}" if start else ""))
        if args.dry_run:
            if main_process:
                print(json.dumps(config.to_json(), indent=1))
            return 0
        if start == config.generations:
            if main_process:
                print(f"{run_dir} has already trained all {start} generations: nothing to do (pass a larger "
                      f"--generations to continue it)")
            return 0
        command = shlex.join(["python", "launch/meta_train.py", *(sys.argv[1:] if argv is None else argv)])
        meta_train(training, run_dir, resume=args.resume, progress=not args.no_progress, resume_from=args.resume_from,
                   command=command)
    except Interrupted as stop:
        if main_process:
            print(f"{stop} (in {run_dir})", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:  # outside the loop (in it, Ctrl-C saves a checkpoint first)
        print("interrupted outside a generation: the last saved checkpoint stands", file=sys.stderr)
        return 130
    except (ValueError, checkpoint.CheckpointError, distributed.DistributedError) as err:
        who = f"process {jax.process_index()}: " if jax.distributed.is_initialized() else ""
        print(f"error: {who}{err}", file=sys.stderr)
        return 2
    if main_process:
        print(f"done: metrics in {run_dir / 'metrics.jsonl'}, checkpoints in {run_dir / 'checkpoints'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
