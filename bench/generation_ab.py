#!/usr/bin/env python
"""Whole ES generations of several variants in one process, rounds interleaved: an A/B that a shared or
turbo-boosting machine cannot bias (its noise hits every variant alike within a round).

    XLA_FLAGS=--xla_force_host_platform_device_count=1 taskset -c 0 python bench/generation_ab.py vsml vsml:ticks=1
    ... --inputs 784 --population 16 --builtin-tanh vsml     # the LSTM's tanh as XLA's op vs written out
    ... --chunks 1,3,8 vsml                                  # ES pairs per kernel

A variant is a learner spec at each of `--chunks` (default: auto), and with `--builtin-tanh` also with
`lstm.builtin_tanh` (the formula before the written-out tanh). Prints the median and best seconds per generation and microseconds per
member-step, and writes the rounds as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from throughput import random_task  # noqa: E402

from metalearn.learners.lstm import builtin_tanh  # noqa: E402
from metalearn.outer.mesh import make_mesh  # noqa: E402
from metalearn.training.config import MetaTrainConfig  # noqa: E402
from metalearn.training.loop import MetaTraining  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("learners", nargs="+", help="learner specs, e.g. vsml vsml:ticks=1")
    parser.add_argument("--inputs", type=int, default=0, help="random inputs of this size (0: the digits default)")
    parser.add_argument("--population", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", default="auto", help="comma-separated ES pairs per kernel (or auto)")
    parser.add_argument("--builtin-tanh", action="store_true", help="also run each spec with XLA's tanh op")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "generation_ab.json")
    args = parser.parse_args()
    tasks = (random_task(args.inputs),) if args.inputs else None
    variants = {}
    for spec, chunk, builtin in itertools.product(args.learners, args.chunks.split(","),
                                                  (False, True) if args.builtin_tanh else (False,)):
        config = MetaTrainConfig(learner=spec)
        config = config.replace(outer=dataclasses.replace(config.outer, population=args.population, chunk=chunk))
        training = MetaTraining(config, make_mesh(1), tasks, tasks, tasks)
        with builtin_tanh() if builtin else contextlib.nullcontext():  # traced (compiled) on the first call
            state, _ = jax.block_until_ready(training.generation_step(training.init(), training.train_tasks))
        name = f"{spec} chunk {training.outer_config.chunk}" + (" (builtin tanh)" if builtin else "")
        variants[name] = [training, state]
    seconds = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            tic = time.perf_counter()
            run[1], _ = jax.block_until_ready(run[0].generation_step(run[1], run[0].train_tasks))
            seconds[name].append(time.perf_counter() - tic)
    member_steps = args.population * MetaTrainConfig().episode_length
    rows = {}
    for name, s in seconds.items():
        rows[name] = {"median_s": float(np.median(s)), "best_s": min(s), "rounds_s": s,
                      "us_per_member_step": float(np.median(s)) / member_steps * 1e6}
        print(f"{name:<36} median {rows[name]['median_s']:.3f} s (best {min(s):.3f})  "
              f"{rows[name]['us_per_member_step']:.1f} us/member-step")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"inputs": args.inputs or 64, "population": args.population, "variants": rows},
                                   indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
