"""Truncated backpropagation through time as a learner wrapper: it works for every learner and needs
nothing from the inner loop or the outer optimizer (`BackpropConfig.wrap` applies it)."""

from __future__ import annotations

import dataclasses

import chex
import jax
import jax.numpy as jnp

from metalearn.learners.base import Feedback, Learner, PyTree, TaskSpec


def check_truncation(truncation: int) -> None:
    """The one check of a truncation setting: 0 (full backprop) or a positive number of inner steps."""
    if truncation < 0:
        raise ValueError(f"truncation must be >= 0 (0: full backprop), got {truncation}")


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

    Chosen over changing `rollout.inner_loop.run_episode`: it needs nothing from the inner loop and works for
    every learner. Limitation: it reduces the gradient's horizon (bias for variance / stability), not
    memory, since `lax.scan`'s backward pass still stores every step's residuals.
    """

    learner: Learner
    truncation: int

    def __post_init__(self):
        if self.truncation < 1:
            raise ValueError(f"TruncatedLearner needs truncation >= 1 inner steps; for 0 (full backprop) use "
                             f"truncate(learner, 0), which returns the learner itself; got {self.truncation}")

    @property
    def name(self) -> str:
        return self.learner.name

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return self.learner.init_meta_params(key, spec)

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree:
        return {"inner": self.learner.init_state(meta_params, key, spec), "step": jnp.int32(0)}

    def merge(self, states: PyTree) -> PyTree:
        """The wrapped learner's rule (so a wrapped kNN still refuses); the copies share the step count."""
        return {"inner": self.learner.merge(states["inner"]), "step": states["step"]}

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
    check_truncation(truncation)
    return learner if truncation == 0 else TruncatedLearner(learner, truncation)
