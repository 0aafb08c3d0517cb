#!/usr/bin/env python
"""metalearn's seed-shared ES against evosax's Open_ES (ask / tell, population materialized, vmap over members).

    python bench/vs_evosax.py                 # writes bench/results/vs_evosax.json
    python bench/vs_evosax.py --time-up-to 100000   # time only up to this many parameters (memory: all)

Both run one generation of the same fitness. First a quadratic in D meta-parameters shaped as a square
matrix: it isolates the ES machinery (noise, population, update), which is what differs between the two.
Then the real fitness, one 100-step episode per member on digits: VSML (2,416 meta-parameters) and a
meta-RNN (a large algorithm), under metalearn's generation (members in chunks of pairs, `--chunk auto`) and
under evosax's ask / `jax.vmap` over the whole population / tell. Peak memory is XLA's memory analysis of the
compiled generation (temp + arguments + outputs); seconds are the median of 3 runs. Ratios: metalearn / evosax.
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
from metalearn.training import keys  # noqa: E402
from metalearn.training.config import MetaTrainConfig  # noqa: E402
from metalearn.training.loop import MetaTraining  # noqa: E402

LEARNERS = ("vsml", "meta_rnn:hidden=160")  # 2,416 and 158,410 meta-parameters on digits

SIGMA, LR = 0.05, 0.025


def fitness(params, target):
    return jnp.sum((params["w"] - target) ** 2), jnp.float32(0)


def metalearn_generation(params, population: int, mesh):
    outer = ESConfig(population, SIGMA, chunk=8).build(fitness, optax.adam(LR), mesh)
    state = replicate(outer.init(params), mesh)
    return jax.jit(outer.step), (state, jax.random.key(0), params["w"] + 1)


def evosax_generation(params, population: int, fitness_fn=fitness, data=None):
    strategy = Open_ES(population, params, optimizer=optax.adam(LR), std_schedule=optax.constant_schedule(SIGMA))
    state = strategy.init(jax.random.key(0), params, strategy.default_params)

    def step(state, key, data):
        members, state = strategy.ask(key, state, strategy.default_params)
        fit = jax.vmap(lambda p: fitness_fn(p, data)[0])(members)
        return strategy.tell(key, members, fit, state, strategy.default_params)

    return jax.jit(step), (state, jax.random.key(0), params["w"] + 1 if data is None else data)


def learner_generations(spec: str, population: int, mesh):
    """metalearn's and evosax's generation of the same learner fitness (the one meta-training uses) on the
    same episodes: metalearn's as `meta_train.py` runs it, evosax's on the learner's initial meta-parameters."""
    config = MetaTrainConfig(learner=spec, outer=ESConfig(population, SIGMA), lr=LR)
    training = MetaTraining(config, mesh)
    state = training.init()
    _, data = training.episodes(keys.root(config.seed), 0, training.train_tasks)  # generation 0's episodes
    ours = jax.jit(training.generation), (state, training.train_tasks)  # no donation: it runs 4 times
    params = training.learner.init_meta_params(keys.init(config.seed), training.spec)
    theirs = evosax_generation(params, population, training.member_fitness, data)
    return training, ours, theirs, sum(x.size for x in jax.tree.leaves(params))


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


def compare(ours: dict, theirs: dict, **fields) -> dict:
    """One table row: both measurements and their ratios (seconds only where both were timed)."""
    row = {**fields, "metalearn": ours, "evosax": theirs, "memory_ratio": ours["peak_bytes"] / theirs["peak_bytes"]}
    if "seconds_per_generation" in ours:
        row["seconds_ratio"] = ours["seconds_per_generation"] / theirs["seconds_per_generation"]
    return row


def fmt(record: dict, key: str) -> str:
    return f"{record[key]:.3f}" if key in record else "-"


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
            row = compare(ours, theirs, parameters=side * side, population=population)
            rows.append(row)
            print(f"{side * side:>10,}{population:>6}{fmt(ours, 'seconds_per_generation'):>13}"
                  f"{fmt(theirs, 'seconds_per_generation'):>10}{fmt(row, 'seconds_ratio'):>9}{row['memory_ratio']:>11.3f}")
    learner_rows = []
    print(f"{'learner':>22}{'params':>9}{'pop':>6}{'metalearn s':>13}{'evosax s':>10}{'s ratio':>9}"
          f"{'metalearn MiB':>15}{'evosax MiB':>12}")
    for spec in LEARNERS:
        for population in (128, 1024):
            training, ours, theirs, size = learner_generations(spec, population, mesh)
            run = population == 128
            ours, theirs = measure(*ours, run), measure(*theirs, run)
            row = compare(ours, theirs, learner=spec, parameters=size, population=population,
                          chunk=training.outer_config.chunk)
            learner_rows.append(row)
            print(f"{spec:>22}{size:>9,}{population:>6}{fmt(ours, 'seconds_per_generation'):>13}"
                  f"{fmt(theirs, 'seconds_per_generation'):>10}{fmt(row, 'seconds_ratio'):>9}"
                  f"{ours['peak_bytes'] / 2**20:>15.1f}{theirs['peak_bytes'] / 2**20:>12.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"devices": len(jax.devices()), "rows": rows, "learners": learner_rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
