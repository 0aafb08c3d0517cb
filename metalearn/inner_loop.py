"""The inner loop: a learner learns online over one episode (predict, be scored, then get feedback)."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from metalearn.learners.base import Feedback, Learner, PyTree, TaskSpec
from tasks.episodes import Episode


class EpisodeResult(NamedTuple):
    """Per-step scores of the online predictions, made before each label was revealed."""

    loss: chex.Array  # [T] cross-entropy
    correct: chex.Array  # [T] bool


def run_episode(learner: Learner, meta_params: PyTree, key: chex.PRNGKey, episode: Episode, num_classes: int
                ) -> EpisodeResult:
    """Unroll `learner` over `episode` with `lax.scan`; `key` draws its initial learnable state."""
    spec = TaskSpec(episode.x.shape[-1], num_classes)
    state = learner.init_state(meta_params, key, spec)

    def step(carry, example):
        state, feedback = carry
        x, y, given = example
        state, logits = learner.step(meta_params, state, x, feedback)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        next_feedback = Feedback.from_prediction(logits, y, given)
        return (state, next_feedback), (loss, jnp.argmax(logits) == y)

    _, (loss, correct) = jax.lax.scan(
        step, (state, Feedback.zeros(num_classes)), (episode.x, episode.y, episode.feedback_mask)
    )
    return EpisodeResult(loss, correct)


def final_part(values: chex.Array, fraction: float = 0.2) -> chex.Array:
    """The last `fraction` of the steps (at least one) along the last axis: where learning has happened."""
    steps = values.shape[-1]
    return values[..., steps - max(1, round(fraction * steps)) :]
