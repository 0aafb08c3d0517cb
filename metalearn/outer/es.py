"""Seed-shared OpenAI-ES (Salimans et al. 2017) sharded over a 1-D device mesh.

Member 2i/2i+1 of a generation is the antithetic pair theta +/- sigma * eps_i, where eps_i is regenerated
from (generation key, pair index i) with one key per parameter leaf, on whichever device needs it. Each
device evaluates its contiguous block of pairs; only their fitness scalars cross devices (one all-gather);
every device then rebuilds the same gradient estimate from the gathered fitness by regenerating the noise
pair by pair. No (population x parameters) matrix ever exists: memory is O(chunk x parameters).

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
import optax
from evosax.core.fitness_shaping import centered_rank_fitness_shaping_fn
from jax.sharding import Mesh, PartitionSpec as P

from metalearn.learners.base import Learner, PyTree
from metalearn.outer.base import (AXIS, FitnessFn, OuterMetrics, OuterOptimizer, OuterState, apply_gradient,
                                  optax_init)


@dataclasses.dataclass(frozen=True)
class ESConfig:
    """Seed-shared OpenAI-ES: `population` members (antithetic pairs) with noise std `sigma`; `chunk` pairs
    are evaluated at once per device (bounds memory, not the result)."""

    population: int = 128
    sigma: float = 0.05
    chunk: int = 8
    name: ClassVar[str] = "es"

    def __post_init__(self):
        if self.population < 1 or self.chunk < 1:
            raise ValueError(f"es: population and chunk must be at least 1, got {self.population}, {self.chunk}")
        if not 0 < self.sigma < math.inf:
            raise ValueError(f"es: sigma must be positive and finite, got {self.sigma}")

    def build(self, fitness_fn: FitnessFn, optimizer: optax.GradientTransformation, mesh: Mesh) -> OuterOptimizer:
        return make(self, fitness_fn, optimizer, mesh)

    def wrap(self, learner: Learner) -> Learner:
        return learner  # ES only evaluates episodes

    def check(self, num_devices: int, episodes: int) -> None:
        check_population(self.population, num_devices)


def check_population(population: int, num_devices: int) -> None:
    """Antithetic pairs are never split across devices, so P must be a multiple of 2 x devices."""
    if population < 2 or population % (2 * num_devices):
        raise ValueError(
            f"population {population} must be a positive multiple of 2 x devices = {2 * num_devices} "
            f"(antithetic pairs, an equal number per device); e.g. --population "
            f"{max(1, round(population / (2 * num_devices))) * 2 * num_devices}."
        )


def pair_noise(key: chex.PRNGKey, pair: chex.Array, template: PyTree) -> PyTree:
    """eps_pair: standard normal noise shaped like `template`, one key per leaf, from (key, pair index)."""
    leaves, treedef = jax.tree.flatten(template)
    keys = jax.random.split(jax.random.fold_in(key, pair), len(leaves))
    return treedef.unflatten([jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])


def _pair_fitness(fitness_fn: FitnessFn, params: PyTree, key: chex.PRNGKey, sigma: chex.Array, data: PyTree,
                  pair: chex.Array):
    """Fitness and accuracy of theta + sigma eps and theta - sigma eps: two arrays of shape [2]."""
    eps = pair_noise(key, pair, params)
    members = jax.tree.map(lambda p, e: p + sigma * jnp.stack([e, -e]), params, eps)
    return jax.vmap(fitness_fn, in_axes=(0, None))(members, data)


def noise_weighted_sum(key: chex.PRNGKey, weights: chex.Array, template: PyTree, chunk: int) -> PyTree:
    """sum_i weights[i] * eps_i, regenerating eps_i in chunks of `chunk` pairs (never all at once)."""
    pairs = weights.shape[0]
    chunk = min(chunk, pairs)
    padded = -(-pairs // chunk) * chunk
    weights = jnp.pad(weights, (0, padded - pairs)).reshape(-1, chunk)
    index = jnp.arange(padded).reshape(-1, chunk)

    def add_chunk(total, block):
        w, idx = block
        eps = jax.vmap(pair_noise, in_axes=(None, 0, None))(key, idx, template)
        return jax.tree.map(lambda t, e: t + jnp.tensordot(w, e, axes=1), total, eps), None

    zeros = jax.tree.map(jnp.zeros_like, template)
    return jax.lax.scan(add_chunk, zeros, (weights, index))[0]


def es_gradient(key: chex.PRNGKey, fitness: chex.Array, template: PyTree, sigma: chex.Array, chunk: int):
    """OpenAI-ES gradient of the expected fitness from raw fitness [P] ordered [+pairs, -pairs]."""
    population = fitness.shape[0]
    shaped = centered_rank_fitness_shaping_fn(None, fitness, None, None)
    plus, minus = jnp.split(shaped, 2)
    grad = noise_weighted_sum(key, plus - minus, template, chunk)
    return jax.tree.map(lambda g: g / (population * sigma), grad)


def make(config: ESConfig, fitness_fn: FitnessFn, optimizer: optax.GradientTransformation,
         mesh: Mesh) -> OuterOptimizer:
    """ES as an `OuterOptimizer`; `step(state, key, data)` is one generation, for use inside jit.

    `fitness_fn(member_params, data)` must be pure; `data` is replicated, so every device agrees on every
    member's fitness. Metrics hold one entry per member, ordered [+pairs..., -pairs...] as in evosax.
    """
    num_devices, chunk = mesh.devices.size, config.chunk
    check_population(config.population, num_devices)
    pairs_per_device = config.population // 2 // num_devices

    def evaluate_block(params, key, sigma, data):
        first = jax.lax.axis_index(AXIS) * pairs_per_device
        pairs = first + jnp.arange(pairs_per_device)
        fit, acc = jax.lax.map(
            lambda i: _pair_fitness(fitness_fn, params, key, sigma, data, i), pairs,
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
        grad = es_gradient(key, fitness, state.params, sigma, chunk)
        return apply_gradient(optimizer, state, grad), OuterMetrics(fitness, accuracy, optax.tree.norm(grad))

    return OuterOptimizer(optax_init(optimizer), step)
