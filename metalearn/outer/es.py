"""Seed-shared OpenAI-ES (Salimans et al. 2017) sharded over a 1-D device mesh.

Member 2i/2i+1 of a generation is the antithetic pair theta +/- sigma * eps_i, where eps_i is regenerated
from (generation key, pair index i) with one key per parameter leaf, on whichever device needs it. Each
device evaluates its contiguous block of pairs; only their fitness scalars cross devices (one all-gather);
every device then rebuilds the same gradient estimate from the gathered fitness by regenerating the noise
pair by pair. No (population x parameters) matrix ever exists: memory is O(chunk x parameters).
With `noise_rank` r each matrix leaf's eps_i is A_i B_i^T / sqrt(r) (low-rank ES, as in EGGROLL): the noise
costs (m + n) r numbers per matrix instead of m n, and the gradient sum is one product of the factors.

The estimate matches evosax's `Open_ES.tell` (antithetic sampling, centered ranks in [-0.5, 0.5],
grad = sum_j shaped_j z_j / (P sigma)), and any optax transformation applies it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from evosax.core.fitness_shaping import centered_rank_fitness_shaping_fn
from jax.sharding import Mesh, PartitionSpec as P

from metalearn.learners.base import Learner, PyTree, TaskSpec
from metalearn.outer.chunking import auto_chunk
from metalearn.outer.base import (AXIS, FitnessFn, OuterMetrics, OuterOptimizer, OuterState, apply_gradient,
                                  optax_init)


@dataclasses.dataclass(frozen=True)
class ESConfig:
    """Seed-shared OpenAI-ES: `population` members (antithetic pairs) with noise std `sigma`; `chunk` pairs
    are evaluated at once per device (bounds memory and sets speed, not the result; 'auto': as many as fit
    the device, `resolve`); `noise_rank` r > 0 perturbs matrix leaves by rank-r noise (`pair_factors`)."""

    population: int = 256
    sigma: float = 0.05
    chunk: int | str = "auto"
    noise_rank: int = 0
    name: ClassVar[str] = "es"

    def __post_init__(self):
        if isinstance(self.chunk, str) and self.chunk != "auto":
            if not self.chunk.isdigit():
                raise ValueError(f"es: chunk must be 'auto' or a positive number of pairs, got {self.chunk!r}")
            object.__setattr__(self, "chunk", int(self.chunk))  # from a command line or a sweep file
        if self.population < 1 or (self.chunk != "auto" and self.chunk < 1):
            raise ValueError(f"es: population and chunk must be at least 1, got {self.population}, {self.chunk}")
        if not 0 < self.sigma < math.inf:
            raise ValueError(f"es: sigma must be positive and finite, got {self.sigma}")
        if self.noise_rank < 0:
            raise ValueError(f"es: noise_rank must be >= 0 (0: full-rank noise), got {self.noise_rank}")

    def build(self, fitness_fn: FitnessFn, optimizer: optax.GradientTransformation, mesh: Mesh) -> OuterOptimizer:
        return make(self, fitness_fn, optimizer, mesh)

    def wrap(self, learner: Learner) -> Learner:
        return learner  # ES only evaluates episodes

    def check(self, num_devices: int, episodes: int) -> None:
        check_population(self.population, num_devices)

    def resolve(self, learner: Learner, spec: TaskSpec, num_devices: int, episodes: int) -> "ESConfig":
        """This config with chunk 'auto' replaced by the pairs per kernel that fit the device (from XLA's
        memory analysis of one step of `learner`; each member runs `episodes` episodes)."""
        if self.chunk != "auto":
            return self
        pairs_per_device = max(1, self.population // 2 // num_devices)
        return dataclasses.replace(self, chunk=auto_chunk(learner, spec, pairs_per_device, episodes))


def check_population(population: int, num_devices: int) -> None:
    """Antithetic pairs are never split across devices, so P must be a multiple of 2 x devices."""
    if population < 2 or population % (2 * num_devices):
        raise ValueError(
            f"population {population} must be a positive multiple of 2 x devices = {2 * num_devices} "
            f"(antithetic pairs, an equal number per device); e.g. --population "
            f"{max(1, round(population / (2 * num_devices))) * 2 * num_devices}."
        )


def pair_factors(key: chex.PRNGKey, pair: chex.Array, template: PyTree, rank: int = 0) -> list[tuple]:
    """eps_pair in factored form, one entry per leaf of `template`, from (key, pair index).

    Full-rank noise (rank 0, vectors, and matrices no bigger than the rank) is `(eps,)`, standard normal;
    rank-r noise of a matrix leaf [m, n] (leading axes folded into m) is `(A, B)` with A [m, r] and B [n, r]
    standard normal, meaning eps = A B^T / sqrt(r): zero mean and unit variance per entry like full-rank
    noise, but m + n numbers per rank instead of m x n."""
    leaves = jax.tree.leaves(template)
    keys = jax.random.split(jax.random.fold_in(key, pair), len(leaves))
    factors = []
    for k, x in zip(keys, leaves):
        m, n = (int(np.prod(x.shape[:-1])), x.shape[-1]) if x.ndim >= 2 else (0, 0)
        if rank and rank < min(m, n):
            ka, kb = jax.random.split(k)
            factors.append((jax.random.normal(ka, (m, rank), x.dtype), jax.random.normal(kb, (n, rank), x.dtype)))
        else:
            factors.append((jax.random.normal(k, x.shape, x.dtype),))
    return factors


def pair_noise(key: chex.PRNGKey, pair: chex.Array, template: PyTree, rank: int = 0) -> PyTree:
    """eps_pair shaped like `template`, standard normal per entry (see `pair_factors`)."""
    leaves, treedef = jax.tree.flatten(template)
    dense = [f[0] if len(f) == 1 else (f[0] @ f[1].T / np.sqrt(rank)).reshape(x.shape)
             for f, x in zip(pair_factors(key, pair, template, rank), leaves)]
    return treedef.unflatten(dense)


def _pair_fitness(fitness_fn: FitnessFn, params: PyTree, key: chex.PRNGKey, sigma: chex.Array, data: PyTree,
                  pair: chex.Array, rank: int = 0):
    """Fitness and accuracy of theta + sigma eps and theta - sigma eps: two arrays of shape [2]."""
    eps = pair_noise(key, pair, params, rank)
    members = jax.tree.map(lambda p, e: p + sigma * jnp.stack([e, -e]), params, eps)
    return jax.vmap(fitness_fn, in_axes=(0, None))(members, data)


def noise_weighted_sum(key: chex.PRNGKey, weights: chex.Array, template: PyTree, chunk: int, rank: int = 0) -> PyTree:
    """sum_i weights[i] * eps_i, regenerating eps_i in chunks of `chunk` pairs (never all at once); rank-r
    leaves are summed from their factors, sum_i w_i A_i B_i^T / sqrt(r), without forming any eps_i."""
    pairs = weights.shape[0]
    chunk = min(chunk, pairs)
    padded = -(-pairs // chunk) * chunk
    weights = jnp.pad(weights, (0, padded - pairs)).reshape(-1, chunk)
    index = jnp.arange(padded).reshape(-1, chunk)
    leaves, treedef = jax.tree.flatten(template)

    def weighted(w, f, x):
        if len(f) == 1:
            return jnp.tensordot(w, f[0], axes=1)
        return (jnp.einsum("c,cmr,cnr->mn", w, *f) / np.sqrt(rank)).reshape(x.shape)

    def add_chunk(total, block):
        w, idx = block
        factors = jax.vmap(pair_factors, in_axes=(None, 0, None, None))(key, idx, template, rank)
        return [t + weighted(w, f, x) for t, f, x in zip(total, factors, leaves)], None

    total = jax.lax.scan(add_chunk, [jnp.zeros_like(x) for x in leaves], (weights, index))[0]
    return treedef.unflatten(total)


def es_gradient(key: chex.PRNGKey, fitness: chex.Array, template: PyTree, sigma: chex.Array, chunk: int,
                rank: int = 0):
    """OpenAI-ES gradient of the expected fitness from raw fitness [P] ordered [+pairs, -pairs]."""
    population = fitness.shape[0]
    shaped = centered_rank_fitness_shaping_fn(None, fitness, None, None)
    plus, minus = jnp.split(shaped, 2)
    grad = noise_weighted_sum(key, plus - minus, template, chunk, rank)
    return jax.tree.map(lambda g: g / (population * sigma), grad)


def make(config: ESConfig, fitness_fn: FitnessFn, optimizer: optax.GradientTransformation,
         mesh: Mesh) -> OuterOptimizer:
    """ES as an `OuterOptimizer`; `step(state, key, data)` is one generation, for use inside jit.

    `fitness_fn(member_params, data)` must be pure; `data` is replicated, so every device agrees on every
    member's fitness. Metrics hold one entry per member, ordered [+pairs..., -pairs...] as in evosax.
    A chunk of 'auto' must be resolved first (`ESConfig.resolve`, as `MetaTraining` does).
    """
    if config.chunk == "auto":
        raise ValueError("es: chunk 'auto' depends on the learner: build ESConfig.resolve(learner, spec, "
                         "devices, episodes), or give a number of pairs")
    num_devices, chunk, rank = mesh.devices.size, config.chunk, config.noise_rank
    check_population(config.population, num_devices)
    pairs_per_device = config.population // 2 // num_devices

    def evaluate_block(params, key, sigma, data):
        first = jax.lax.axis_index(AXIS) * pairs_per_device
        pairs = first + jnp.arange(pairs_per_device)
        fit, acc = jax.lax.map(
            lambda i: _pair_fitness(fitness_fn, params, key, sigma, data, i, rank), pairs,
            batch_size=min(chunk, pairs_per_device),
        )  # [pairs_per_device, 2] each
        return jax.lax.all_gather(fit, AXIS, tiled=True), jax.lax.all_gather(acc, AXIS, tiled=True)

    # check_vma=False: learners' scans start from device-invariant zeros and would otherwise each need a
    # pcast; the outputs are all-gathered, so they really are replicated as out_specs claims.
    evaluate = jax.shard_map(evaluate_block, mesh=mesh, in_specs=(P(), P(), P(), P()), out_specs=(P(), P()),
                             check_vma=False)

    def step(state: OuterState, key: chex.PRNGKey, data: PyTree) -> tuple[OuterState, OuterMetrics]:
        sigma = jnp.float32(config.sigma)
        fit, acc = evaluate(state.params, key, sigma, data)  # [P/2, 2]: column 0 = +eps, column 1 = -eps
        fitness, accuracy = fit.T.reshape(-1), acc.T.reshape(-1)
        grad = es_gradient(key, fitness, state.params, sigma, chunk, rank)
        return apply_gradient(optimizer, state, grad), OuterMetrics(fitness, accuracy, optax.tree.norm(grad))

    return OuterOptimizer(optax_init(optimizer), step)
