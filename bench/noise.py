#!/usr/bin/env python
"""Rank-r ES noise against full-rank noise: generation time, memory, and the quality of the estimate.

    python bench/noise.py            # writes bench/results/noise.json

- Noise time: one generation's gradient sum (`es.noise_weighted_sum` over P/2 pairs, the part every device
  repeats) for a square matrix of 1e4 .. 1e6 parameters, full rank and rank 1 / 4; memory from XLA's memory
  analysis of the same compiled function.
- Estimate quality on the meta-RNN's meta-parameters (784 -> 10 shapes): the cosine between one generation's
  ES estimate and the true gradient of a random quadratic, mean over keys: variance shows as a lower cosine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

from metalearn.outer import es  # noqa: E402
from metalearn.learners import TaskSpec, make_learner  # noqa: E402

RANKS = (0, 1, 4)  # 0: full rank


def noise_cost(size: int, rank: int, pairs: int, chunk: int, repeats: int = 3) -> dict:
    side = int(round(size**0.5))
    template = {"w": jax.ShapeDtypeStruct((side, side), jnp.float32)}
    f = jax.jit(lambda key, w: es.noise_weighted_sum(key, w, template, chunk, rank))
    args = (jax.random.key(0), jnp.linspace(-1, 1, pairs))
    compiled = f.lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - tic)
    return {"parameters": side * side, "rank": rank, "seconds_per_generation": float(np.median(times)),
            "temp_bytes": int(compiled.memory_analysis().temp_size_in_bytes)}


def estimate_cosine(template, rank: int, pairs: int, keys: int, sigma: float = 0.05) -> float:
    flat, unravel = ravel_pytree(template)
    target = jax.random.normal(jax.random.key(1), flat.shape)
    fitness = lambda p: jnp.sum((ravel_pytree(p)[0] - target) ** 2)  # noqa: E731
    true = ravel_pytree(jax.grad(fitness)(template))[0]

    @jax.jit
    def cosine(key):
        def pair(i):
            eps = es.pair_noise(key, i, template, rank)
            return jnp.stack([fitness(jax.tree.map(lambda t, e: t + s * sigma * e, template, eps)) for s in (1, -1)])
        fit = jax.lax.map(pair, jnp.arange(pairs), batch_size=8)  # [pairs, 2]
        grad = ravel_pytree(es.es_gradient(key, fit.T.reshape(-1), template, jnp.float32(sigma), 8, rank))[0]
        return grad @ true / jnp.linalg.norm(grad) / jnp.linalg.norm(true)

    return float(np.mean([cosine(k) for k in jax.random.split(jax.random.key(2), keys)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=128)
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "noise.json")
    args = parser.parse_args()
    pairs = args.population // 2
    results = {"population": args.population, "noise": [], "meta_rnn_cosine": {}}
    print(f"{'parameters':>11}{'rank':>6}{'s/generation':>14}{'temp MiB':>10}")
    for size in (10**4, 10**5, 10**6):
        for rank in RANKS:
            row = noise_cost(size, rank, pairs, chunk=8)
            results["noise"].append(row)
            print(f"{row['parameters']:>11,}{rank:>6}{row['seconds_per_generation']:>14.4f}{row['temp_bytes'] / 2**20:>10.1f}")
    learner = make_learner("meta_rnn")
    template = jax.tree.map(jnp.zeros_like, learner.init_meta_params(jax.random.key(0), TaskSpec(784, 10)))
    results["meta_rnn_parameters"] = int(ravel_pytree(template)[0].size)
    for rank in RANKS:
        results["meta_rnn_cosine"][rank] = estimate_cosine(template, rank, pairs, args.keys)
        print(f"meta-RNN ({results['meta_rnn_parameters']:,} params), rank {rank or 'full'}: cosine(estimate, "
              f"true gradient) = {results['meta_rnn_cosine'][rank]:.4f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
