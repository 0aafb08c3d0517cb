#!/usr/bin/env python
"""metalearn's seed-shared ES against evosax's Open_ES (ask / tell, population materialized, vmap over members).

    python bench/vs_evosax.py                 # writes bench/results/vs_evosax.json
    python bench/vs_evosax.py --time-up-to 100000   # time only up to this many parameters (memory: all)

Both run one generation of the same fitness, a quadratic in D meta-parameters shaped as a square matrix:
it isolates the ES machinery (noise, population, update), which is what differs between the two; the
learner's cost is the same under both. Peak memory is XLA's memory analysis of the compiled generation
(temp + arguments + outputs); seconds are the median of 3 runs. Ratios are metalearn / evosax.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch._cpu_devices import expose_cpu_cores  # noqa: E402

expose_cpu_cores()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from evosax.algorithms import Open_ES  # noqa: E402

from metalearn.outer.es import ESConfig  # noqa: E402
from metalearn.outer.mesh import make_mesh, replicate  # noqa: E402

SIGMA, LR = 0.05, 0.025


def fitness(params, target):
    return jnp.sum((params["w"] - target) ** 2), jnp.float32(0)


def metalearn_generation(params, population: int, mesh):
    outer = ESConfig(population, SIGMA, chunk=8).build(fitness, optax.adam(LR), mesh)
    state = replicate(outer.init(params), mesh)
    return jax.jit(outer.step), (state, jax.random.key(0), params["w"] + 1)


def evosax_generation(params, population: int):
    strategy = Open_ES(population, params, optimizer=optax.adam(LR), std_schedule=optax.constant_schedule(SIGMA))
    state = strategy.init(jax.random.key(0), params, strategy.default_params)

    def step(state, key, target):
        members, state = strategy.ask(key, state, strategy.default_params)
        fit = jax.vmap(lambda p: fitness(p, target)[0])(members)
        return strategy.tell(key, members, fit, state, strategy.default_params)

    return jax.jit(step), (state, jax.random.key(0), params["w"] + 1)


def measure(step, args, run: bool) -> dict:
    compiled = step.lower(*args).compile()
    m = compiled.memory_analysis()
    row = {"peak_bytes": int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)}
    if run:
        jax.block_until_ready(compiled(*args))
        times = []
        for _ in range(3):
            tic = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times.append(time.perf_counter() - tic)
        row["seconds_per_generation"] = float(np.median(times))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-up-to", type=int, default=10**6)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "vs_evosax.json")
    args = parser.parse_args()
    mesh = make_mesh(len(jax.devices()))
    rows = []
    print(f"{'params':>10}{'pop':>6}{'metalearn s':>13}{'evosax s':>10}{'s ratio':>9}{'mem ratio':>11}")
    for size in (10**4, 10**5, 10**6):
        side = int(round(size**0.5))
        params = {"w": jnp.zeros((side, side))}
        for population in (128, 1024):
            run = size <= args.time_up_to
            ours = measure(*metalearn_generation(params, population, mesh), run)
            theirs = measure(*evosax_generation(params, population), run)
            row = {"parameters": side * side, "population": population, "metalearn": ours, "evosax": theirs,
                   "memory_ratio": ours["peak_bytes"] / theirs["peak_bytes"]}
            if run:
                row["seconds_ratio"] = ours["seconds_per_generation"] / theirs["seconds_per_generation"]
            rows.append(row)
            fmt = lambda r, k: f"{r[k]:.3f}" if k in r else "-"  # noqa: E731
            print(f"{side * side:>10,}{population:>6}{fmt(ours, 'seconds_per_generation'):>13}"
                  f"{fmt(theirs, 'seconds_per_generation'):>10}{fmt(row, 'seconds_ratio'):>9}{row['memory_ratio']:>11.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"devices": len(jax.devices()), "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
