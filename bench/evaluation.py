#!/usr/bin/env python
"""Seconds per meta-test evaluation: the episodes in one vmap on one device, or split over every device
with `chunk` episodes per kernel (what `MetaTraining` and `launch/meta_test.py` do).

    python bench/evaluation.py                                  # pretrained/vsml-digits, 64 episodes, all cores
    python bench/evaluation.py --run pretrained/vsml-mnist7-ex-s0 --task fashion_mnist:resize=7 --episodes 256

Prints each variant's seconds per call (after one compiling call) and its accuracy (the same for every
variant up to rounding), and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch._cpu_devices import expose_cpu_cores  # noqa: E402

expose_cpu_cores()  # one XLA device per core, as the launchers do

import jax  # noqa: E402

from metalearn import load_run  # noqa: E402
from metalearn.learners import TaskSpec  # noqa: E402
from metalearn.outer.chunking import episodes_per_kernel  # noqa: E402
from metalearn.outer.mesh import make_mesh  # noqa: E402
from metalearn.rollout.evaluation import evaluate  # noqa: E402
from tasks import load_task  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="pretrained/vsml-digits", help="a run dir or pretrained folder")
    p.add_argument("--task", default="digits", help="scored on its test split")
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--chunks", default="0,1,2,4,8", help="episodes per kernel to try (0: one vmap per device)")
    p.add_argument("--calls", type=int, default=3, help="timed calls per variant")
    p.add_argument("--out", default="bench/results/evaluation.json")
    args = p.parse_args(argv)

    run, task = load_run(args.run), load_task(args.task).test
    mesh = make_mesh(len(jax.devices()))
    spec = TaskSpec.of(task, args.length)
    batch = run.config.inner_batch
    auto = episodes_per_kernel(run.learner, spec, args.episodes, mesh.devices.size, batch)
    variants = [("one vmap on the first device", None, 0)]
    variants += [(f"split over {mesh.devices.size} devices, chunk {c}" + (" (auto)" if c == auto else ""), mesh, c)
                 for c in (int(c) for c in args.chunks.split(","))]
    rows = []
    for name, m, chunk in variants:
        f = jax.jit(lambda params, m=m, chunk=chunk: evaluate(run.learner, params, task, jax.random.key(0),
                                                              args.episodes, args.length, batch, m, chunk))
        jax.block_until_ready(f(run.meta_params))
        seconds = []
        for _ in range(args.calls):
            tic = time.perf_counter()
            result = jax.block_until_ready(f(run.meta_params))
            seconds.append(time.perf_counter() - tic)
        rows.append({"variant": name, "chunk": chunk, "seconds": seconds, "acc": float(result.acc)})
        print(f"{name:45s} {min(seconds):6.3f}-{max(seconds):6.3f} s   acc {float(result.acc):.4f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run": args.run, "task": args.task, "episodes": args.episodes, "length": args.length,
                               "devices": mesh.devices.size, "platform": jax.devices()[0].platform,
                               "auto_chunk": auto, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
