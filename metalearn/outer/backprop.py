"""Gradient-based meta-training: backpropagation through the unrolled inner loop, a drop-in for ES.

An `OuterOptimizer` like ES (`metalearn.outer.base`). The meta-gradient is `jax.grad` of the fitness
(the mean episode loss) w.r.t. the meta-parameters, through every step of `run_episode`'s `lax.scan`.

Data parallel over the 1-D mesh (axis `AXIS`): the episodes are split over devices, each device
differentiates the fitness of its share and the gradients are averaged with `pmean`. Unlike ES, where
only fitness scalars cross devices, this all-reduces a parameter-sized gradient every step.

Truncated backprop lives with the learners (`metalearn.learners.truncation`), because `fitness_fn` is
opaque here: `BackpropConfig.wrap` tells the trainer to build its fitness with the truncated learner.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec as P

from metalearn.learners.base import Learner, PyTree, TaskSpec
from metalearn.learners.truncation import check_truncation, truncate
from metalearn.outer.base import (AXIS, FitnessFn, OuterMetrics, OuterOptimizer, OuterState, apply_gradient,
                                  optax_init)


@dataclasses.dataclass(frozen=True)
class BackpropConfig:
    """Backpropagation through the episode, gradients cut every `truncation` inner steps (0: never)."""

    truncation: int = 0
    name: ClassVar[str] = "backprop"

    def __post_init__(self):
        check_truncation(self.truncation)

    def build(self, fitness_fn: FitnessFn, optimizer: optax.GradientTransformation, mesh: Mesh) -> OuterOptimizer:
        return make(fitness_fn, optimizer, mesh)

    def wrap(self, learner: Learner) -> Learner:
        return truncate(learner, self.truncation)

    def check(self, num_devices: int, episodes: int) -> None:
        check_episode_count(episodes, num_devices, "each task's batch (episodes_per_member)")

    def resolve(self, learner: Learner, spec: TaskSpec, num_devices: int, episodes: int) -> "BackpropConfig":
        return self  # nothing depends on the learner


def check_episode_count(count: int, num_devices: int, where: str) -> None:
    """The episodes are split over the devices: their number must divide evenly."""
    if count % num_devices:
        raise ValueError(
            f"backprop splits the episodes over {num_devices} devices, but {where} has {count} episodes, "
            f"which does not divide by {num_devices}; use a multiple of {num_devices} episodes per task "
            f"(e.g. --episodes-per-member {max(1, round(count / num_devices)) * num_devices}) or fewer devices."
        )


def check_episodes(data: PyTree, num_devices: int) -> None:
    """Every leaf of `data` is split along its leading (episode) axis: that axis must divide evenly."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(data):
        shape = jnp.shape(leaf)
        where = f"{jax.tree_util.keystr(path) or 'data'} (leading axis, shape {tuple(shape)})"
        if not shape:
            raise ValueError(f"backprop splits the episodes over devices, but {where} has no episode axis; "
                             f"give every leaf of the data a leading episode axis.")
        check_episode_count(shape[0], num_devices, where)


def make(fitness_fn: FitnessFn, optimizer: optax.GradientTransformation, mesh: Mesh) -> OuterOptimizer:
    """Backprop as an `OuterOptimizer`; `step(state, key, data)` is one gradient step, for use inside jit.

    - `fitness_fn(params, data) -> (loss, accuracy)` as for ES, but differentiable; it should *average*
      over the episode axis of `data` (as `rollout.mean_fitness` does), so that the mean over devices of
      the per-shard loss and gradient is the loss and gradient on all episodes.
    - `data`: every leaf has the episode axis first (e.g. a tuple over tasks of (init_keys [E],
      episodes [E, T, ...])); each device takes E / devices consecutive episodes of every leaf. A
      ValueError is raised (at trace time) if E does not divide by the device count.
    - `key` is ignored: the gradient is exact, nothing is sampled.
    - `metrics`: `OuterMetrics(fitness=[loss], accuracy=[accuracy], grad_norm)`, shape [1] each, so that
      `.mean()` reads as it does for ES (which returns one entry per population member).

    The gradient crosses devices (an all-reduce of parameter size per step) and the backward pass keeps
    the scan's residuals of every inner step in memory: O(episodes x steps x learner state) per device.
    """
    num_devices = mesh.devices.size

    def shard_gradient(params, data):
        (loss, acc), grad = jax.value_and_grad(fitness_fn, has_aux=True)(params, data)
        return jax.lax.pmean((loss, acc, grad), AXIS)

    # check_vma=False as in es.py (learners' scans start from device-invariant zeros). With it off, the
    # gradient of the replicated params is each device's local gradient, and pmean averages them.
    gradient = jax.shard_map(shard_gradient, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P(),
                             check_vma=False)

    def step(state: OuterState, key: chex.PRNGKey, data: PyTree) -> tuple[OuterState, OuterMetrics]:
        del key
        check_episodes(data, num_devices)
        loss, acc, grad = gradient(state.params, data)
        return apply_gradient(optimizer, state, grad), OuterMetrics(loss[None], acc[None], optax.tree.norm(grad))

    return OuterOptimizer(optax_init(optimizer), step)


