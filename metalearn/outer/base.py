"""The outer-optimizer interface, optax-style: a NamedTuple of two pure functions.

An outer optimizer improves the meta-parameters from a fitness function of (params, data). `init(params)`
builds its state; `step(state, key, data)` makes one outer step (one ES generation, one gradient step) and
is jit-able. Its state and metrics are neutral types, so the trainer, checkpoints and reports never learn
which optimizer ran. An optimizer is chosen by its config (a frozen dataclass with a `name`, see
`metalearn.outer.OUTER`), which also builds it, says how it wants the learner wrapped, and resolves
settings that depend on the learner (`resolve`).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Protocol

import chex
import optax
from jax.sharding import Mesh

from metalearn.learners.base import Learner, PyTree, TaskSpec

AXIS = "population"  # the name of the 1-D device mesh's axis every outer optimizer shards over

# fitness_fn(params, data) -> (fitness to minimise, accuracy); `data` (this step's episodes) is a pytree.
FitnessFn = Callable[[PyTree, PyTree], tuple[chex.Array, chex.Array]]


class OuterState(NamedTuple):
    params: PyTree  # the meta-parameters (for ES: the search distribution's mean)
    opt_state: optax.OptState


class OuterMetrics(NamedTuple):
    fitness: chex.Array  # [M]: one entry per evaluated member (ES: population; backprop: 1)
    accuracy: chex.Array  # [M]
    grad_norm: chex.Array


class InitFn(Protocol):
    def __call__(self, params: PyTree) -> OuterState: ...


class StepFn(Protocol):
    def __call__(self, state: OuterState, key: chex.PRNGKey, data: PyTree) -> tuple[OuterState, OuterMetrics]: ...


class OuterOptimizer(NamedTuple):
    init: InitFn
    step: StepFn


class OuterConfig(Protocol):
    """What the registry needs of an optimizer's config (a frozen dataclass with ClassVar `name`)."""

    name: str

    def build(self, fitness_fn: FitnessFn, optimizer: optax.GradientTransformation, mesh: Mesh) -> OuterOptimizer: ...

    def wrap(self, learner: Learner) -> Learner: ...

    def check(self, num_devices: int, episodes: int) -> None: ...

    def resolve(self, learner: Learner, spec: TaskSpec, num_devices: int, episodes: int) -> "OuterConfig":
        """This config with settings that depend on the learner and devices (e.g. ES chunk 'auto') fixed."""
        ...


def optax_init(optimizer: optax.GradientTransformation) -> InitFn:
    """The `init` of every optimizer here: the params and the optax state of the update rule."""
    return lambda params: OuterState(params, optimizer.init(params))


def apply_gradient(optimizer: optax.GradientTransformation, state: OuterState, grad: PyTree) -> OuterState:
    """One optax update of `state` along `grad` (an estimate or the exact gradient)."""
    updates, opt_state = optimizer.update(grad, state.opt_state, state.params)
    return OuterState(optax.apply_updates(state.params, updates), opt_state)
