"""Gradient-based meta-training: backpropagation through the unrolled inner loop, a drop-in for ES.

`make_backprop_step` builds a step with the signature and return types of `es.make_es_step`'s `es_step`,
so the trainer can switch outer optimizers with a flag. The meta-gradient is `jax.grad` of the fitness
(the mean episode loss) w.r.t. the meta-parameters, through every step of `run_episode`'s `lax.scan`.

Data parallel over the 1-D mesh (axis `es.AXIS`): the episodes are split over devices, each device
differentiates the fitness of its share and the gradients are averaged with `pmean`. Unlike ES, where
only fitness scalars cross devices, this all-reduces a parameter-sized gradient every step.

Truncated backprop lives with the learner (`truncate(learner, k)`), because `fitness_fn` is opaque here:
the trainer builds its fitness with the wrapped learner. See `TruncatedLearner`.
"""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, PartitionSpec as P

from metalearn.outer.es import AXIS, ESMetrics, ESState, FitnessFn
from metalearn.learners.base import Feedback, Learner, PyTree, TaskSpec


def check_episodes(data: PyTree, num_devices: int) -> None:
    """Every leaf of `data` is split along its leading (episode) axis: that axis must divide evenly."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(data):
        shape = jnp.shape(leaf)
        if not shape or shape[0] % num_devices:
            where = jax.tree_util.keystr(path) or "data"
            count = shape[0] if shape else "no"
            raise ValueError(
                f"backprop splits the episodes over {num_devices} devices, but {where} has {count} episodes "
                f"(leading axis, shape {tuple(shape)}), which does not divide by {num_devices}; use a "
                f"multiple of {num_devices} episodes per task (e.g. --episodes-per-member "
                f"{max(1, round(shape[0] / num_devices)) * num_devices if shape else num_devices}) "
                f"or fewer devices."
            )


def make_backprop_step(fitness_fn: FitnessFn, optimizer: optax.GradientTransformation, mesh: Mesh,
                       population: int | None = None, chunk: int | None = None):
    """Build `step(state, key, sigma, data) -> (state, metrics)`, one gradient step, for use inside jit.

    - `fitness_fn(params, data) -> (loss, accuracy)` as for ES, but differentiable; it should *average*
      over the episode axis of `data` (as `MetaTraining._fitness` does), so that the mean over devices of
      the per-shard loss and gradient is the loss and gradient on all episodes.
    - `data`: every leaf has the episode axis first (e.g. a tuple over tasks of (init_keys [E],
      episodes [E, T, ...])); each device takes E / devices consecutive episodes of every leaf. A
      ValueError is raised (at trace time) if E does not divide by the device count.
    - `key`, `sigma`, `population` and `chunk` are accepted for compatibility with `es.make_es_step` and
      ignored: the gradient is exact, nothing is sampled.
    - `metrics`: `ESMetrics(fitness=[loss], accuracy=[accuracy], grad_norm)`, shape [1] each, so that
      `.mean()` reads as it does for ES (which returns one entry per population member).

    The gradient crosses devices (an all-reduce of parameter size per step) and the backward pass keeps
    the scan's residuals of every inner step in memory: O(episodes x steps x learner state) per device.
    """
    del population, chunk  # ES-only knobs
    num_devices = mesh.devices.size

    def shard_gradient(params, data):
        (loss, acc), grad = jax.value_and_grad(fitness_fn, has_aux=True)(params, data)
        return jax.lax.pmean((loss, acc, grad), AXIS)

    # check_vma=False as in es.py (learners' scans start from device-invariant zeros). With it off, the
    # gradient of the replicated params is each device's local gradient, and pmean averages them.
    gradient = jax.shard_map(shard_gradient, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=P(),
                             check_vma=False)

    def step(state: ESState, key: chex.PRNGKey, sigma: chex.Array, data: PyTree) -> tuple[ESState, ESMetrics]:
        del key, sigma
        check_episodes(data, num_devices)
        loss, acc, grad = gradient(state.params, data)
        updates, opt_state = optimizer.update(grad, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return ESState(params, opt_state), ESMetrics(loss[None], acc[None], optax.tree.norm(grad))

    return step


def _stop_if(cut: chex.Array, tree: PyTree) -> PyTree:
    """`tree` with gradients blocked where `cut` is True; values are unchanged. Non-float leaves pass."""
    def leaf(x):
        if not jnp.issubdtype(jnp.result_type(x), jnp.inexact):
            return x
        return jnp.where(cut, jax.lax.stop_gradient(x), x)

    return jax.tree.map(leaf, tree)


@dataclasses.dataclass(frozen=True)
class TruncatedLearner:
    """`learner` with gradients cut every `truncation` inner steps: truncated backprop through time.

    The state is `{"inner": learner state, "step": int32 count}`. Before step t, for t > 0 and t a multiple
    of `truncation`, `stop_gradient` is applied to the incoming learner state and to the incoming feedback
    (which depends on the previous prediction, hence on the previous state; cutting only the state would
    leave that path open). The episode is thus split into windows of `truncation` steps, and a step's loss
    is differentiated only back to the start of its window (window 0 reaches the initial state, so a
    learned initial state still gets a gradient). Forward values are exactly those of `learner`, so the
    wrapper is harmless under ES; `truncation >= episode length` equals full backprop.

    Chosen over changing `inner_loop.run_episode`: it needs nothing from the inner loop and works for
    every learner. Limitation: it reduces the gradient's horizon (bias for variance / stability), not
    memory, since `lax.scan`'s backward pass still stores every step's residuals.
    """

    learner: Learner
    truncation: int

    def __post_init__(self):
        if self.truncation < 1:
            raise ValueError(f"truncation must be >= 1 inner steps (0 means full backprop: use the learner "
                             f"itself or truncate(learner, 0)), got {self.truncation}")

    @property
    def name(self) -> str:
        return self.learner.name

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return self.learner.init_meta_params(key, spec)

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {"inner": self.learner.init_state(meta_params, key, spec), "step": jnp.int32(0)}

    def step(self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
             ) -> tuple[PyTree, chex.Array]:
        t = state["step"]
        cut = (t > 0) & (t % self.truncation == 0)
        inner, feedback = _stop_if(cut, (state["inner"], feedback))
        inner, logits = self.learner.step(meta_params, inner, x, feedback)
        return {"inner": inner, "step": t + 1}, logits


def truncate(learner: Learner, truncation: int = 0) -> Learner:
    """`learner` for backprop truncated every `truncation` inner steps; 0 (the default): `learner` itself,
    i.e. full backprop through the episode."""
    if truncation < 0:
        raise ValueError(f"truncation must be >= 0 (0: full backprop), got {truncation}")
    return learner if truncation == 0 else TruncatedLearner(learner, truncation)
