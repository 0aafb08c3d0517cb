#!/usr/bin/env python
"""Meta-training throughput: member-steps/s, FLOP utilization, and memory against population size.

    python bench/throughput.py                 # all local devices (one per CPU core on a CPU host)
    python bench/throughput.py --quick         # fewer timed generations
    python bench/throughput.py --population 1024 --episode-length 500   # VSML's published scale (a GPU)
    python bench/throughput.py --learner vsml:single_pass=true --out /tmp/sp.json   # another learner

Prints a table and writes bench/results/throughput.json. Member-steps/s = population x episode steps per
second of generation time. FLOP utilization = learner FLOPs per member-step (XLA cost analysis of the
compiled inner step) x member-steps/s / the f32 matmul throughput measured in the same run. Memory is XLA's
compiled memory analysis of one generation at population P and 8P: on a CPU it must not grow with P; on an
accelerator it grows with P until a kernel's members fill half of the device (`--chunk auto`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch._cpu_devices import expose_cpu_cores  # noqa: E402

expose_cpu_cores()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from metalearn.learners import step_flops  # noqa: E402
from metalearn.outer.mesh import make_mesh  # noqa: E402
from metalearn.training.config import MetaTrainConfig  # noqa: E402
from metalearn.training.loop import MetaTraining  # noqa: E402
from tasks import DatasetEpisodes, Pool  # noqa: E402


def matmul_flops_per_second(repeats: int = 10) -> float:
    """f32 matmul throughput of one device at n x n (n = 2048 on a CPU; 8192 fills an accelerator), at the
    default matmul precision, the one the learners run at."""
    n = 2048 if jax.devices()[0].platform == "cpu" else 8192
    a = jax.random.normal(jax.random.key(0), (n, n))
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    tic = time.perf_counter()
    for _ in range(repeats):
        out = f(a)
    out.block_until_ready()
    return 2 * n**3 * repeats / (time.perf_counter() - tic)


def random_task(input_size: int, num_classes: int = 10, examples: int = 2048) -> DatasetEpisodes:
    """Synthetic inputs of a given size: throughput depends on shapes, not on pixel values."""
    kx, ky = jax.random.split(jax.random.key(0))
    pool = Pool(x=jax.random.normal(kx, (examples, input_size)), y=jax.random.randint(ky, (examples,), 0, num_classes))
    return DatasetEpisodes(pool=pool, pool_classes=num_classes, name=f"random{input_size}")


def compiled_memory(training: MetaTraining) -> dict:
    """XLA's memory analysis of one compiled generation (per device)."""
    memory = training.generation_step.lower(training.init(), training.train_tasks).compile().memory_analysis()
    return {"temp_bytes": int(memory.temp_size_in_bytes), "argument_bytes": int(memory.argument_size_in_bytes),
            "output_bytes": int(memory.output_size_in_bytes)}


def time_generations(training: MetaTraining, generations: int) -> dict:
    state, metrics = training.generation_step(training.init(), training.train_tasks)  # compile and warm up
    jax.block_until_ready(metrics)
    tic = time.perf_counter()
    for _ in range(generations):
        state, metrics = training.generation_step(state, training.train_tasks)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - tic) / generations
    cfg = training.config
    return {"seconds_per_generation": seconds,
            "member_steps_per_second": cfg.outer.population * cfg.episode_length * cfg.episodes_per_member / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 timed generations instead of 10")
    parser.add_argument("--devices", type=int, default=None)
    parser.add_argument("--population", type=int, default=128, help="128: comparable with the earlier figures")
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--learner", default="vsml", help="learner spec; 'vsml' (a backward and a forward "
                        "update per step) is the one every earlier figure measured")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "throughput.json")
    args = parser.parse_args()
    generations = 3 if args.quick else 10
    num_devices = args.devices or len(jax.devices())
    mesh = make_mesh(num_devices)
    peak = matmul_flops_per_second()
    config = MetaTrainConfig(episode_length=args.episode_length, learner=args.learner)
    config = config.replace(outer=dataclasses.replace(config.outer, population=args.population))
    population = config.outer.population
    cases = {"digits 8x8": None, "28x28 inputs": (random_task(784),)}
    results = {"machine": {"platform": jax.devices()[0].platform, "device_kind": jax.devices()[0].device_kind,
                           "devices": num_devices, "processor": platform.processor() or platform.machine(),
                           "jax": jax.__version__, "matmul_f32_flops_per_second_one_device": peak,
                           "matmul_precision": "JAX's default for f32 (f32 on a CPU, TF32 on an NVIDIA GPU): "
                                               "the learners' products run at it too"},
               "cases": {}}
    print(f"{num_devices} x {jax.devices()[0].device_kind}; f32 matmul (default precision) on one device: "
          f"{peak / 1e9:.1f} GFLOP/s; "
          f"population {population}, {config.episode_length}-step episodes, {config.learner}")
    # On a CPU host the fake devices share the cores that one device's matmul already uses.
    per_peak = 1 if jax.devices()[0].platform == "cpu" else num_devices
    peaks = [peak * per_peak]
    print(f"{'case':<22}{'s/gen':>7}{'member-steps/s':>16}{'FLOP/step':>11}{'util':>7}"
          f"{'temp MiB at P':>15}{'at 8P':>9}")
    for name, tasks in cases.items():
        training = MetaTraining(config, mesh, tasks, tasks, tasks)
        spec = training.spec
        flops = step_flops(training.learner, spec)
        row = time_generations(training, generations)
        # a shared machine: the peak measured right after the case too, and the median of all taken so far
        peaks.append(matmul_flops_per_second() * per_peak)
        peak_all = float(np.median(peaks))
        row.update(flops_per_member_step=flops, flop_utilization=flops * row["member_steps_per_second"] / peak_all,
                   chunk=training.outer_config.chunk, peak_flops_per_second_used=peak_all)
        big = MetaTraining(config.replace(outer=dataclasses.replace(config.outer, population=8 * population)), mesh,
                           tasks, tasks, tasks)
        memory = {population: compiled_memory(training), 8 * population: compiled_memory(big)}
        print(f"{name:<22}{row['seconds_per_generation']:>7.2f}{row['member_steps_per_second']:>16,.0f}"
              f"{flops:>11.3g}{row['flop_utilization']:>7.1%}"
              + "".join(f"{m['temp_bytes'] / 2**20:>{w}.1f}" for m, w in zip(memory.values(), (15, 9))))
        results["cases"][name] = {"input_size": spec.input_size, "episode_length": config.episode_length,
                                  "population": population, "learner": config.learner, **row,
                                  "memory_by_population": memory}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
