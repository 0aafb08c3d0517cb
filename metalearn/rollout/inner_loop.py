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


def run_episode(learner: Learner, meta_params: PyTree, key: chex.PRNGKey, episode: Episode, num_classes: int,
                batch: int = 1) -> EpisodeResult:
    """Unroll `learner` over `episode` with `lax.scan`; `key` draws its initial learnable state.

    With `batch` B > 1 the episode is consumed B examples per step: each of B copies of the state absorbs
    the feedback on its own previous example and predicts its next one, then the copies' states are averaged
    (`merge_batch`), VSML's rule for inner batches (for online SGD: minibatch SGD).
    """
    spec = TaskSpec(episode.x.shape[-1], num_classes)
    state = learner.init_state(meta_params, key, spec)
    length = episode.y.shape[0]
    if batch > 1:
        if not getattr(learner, "mergeable", True):
            raise ValueError(f"{learner.name} keeps per-example memory that averaging would destroy; "
                             f"use an inner batch of 1 with it")
        if length % batch:
            raise ValueError(f"episode length {length} does not divide into inner batches of {batch}")
        state = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (batch, *jnp.shape(leaf))), state)

    def learner_step(meta_params, state, x, feedback):
        if batch == 1:
            return learner.step(meta_params, state, x, feedback)
        states, logits = jax.vmap(learner.step, (None, 0, 0, 0))(meta_params, state, x, feedback)
        return merge_batch(states), logits

    def step(carry, example):
        state, feedback = carry
        x, y, given = example
        state, logits = learner_step(meta_params, state, x, feedback)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        next_feedback = Feedback.from_prediction(logits, y, given)
        return (state, next_feedback), (loss, jnp.argmax(logits, -1) == y)

    shaped = [a.reshape(length // batch, batch, *a.shape[1:]) if batch > 1 else a
              for a in (episode.x, episode.y, episode.feedback_mask)]
    feedback = Feedback.zeros(num_classes)
    if batch > 1:
        feedback = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (batch, num_classes)), feedback)
    _, (loss, correct) = jax.lax.scan(step, (state, feedback), tuple(shaped))
    return EpisodeResult(loss.reshape(length), correct.reshape(length))


# State entries that hold what one copy last saw: they stay per example when a batch's states merge.
PER_EXAMPLE = ("x_prev", "fwd_in")


def merge_batch(states: PyTree) -> PyTree:
    """Average the float leaves of B state copies over the batch axis, except the per-example entries."""
    def merge(path, leaf):
        if any(getattr(k, "key", None) in PER_EXAMPLE for k in path) or not jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf
        return jnp.broadcast_to(leaf.mean(0), leaf.shape)

    return jax.tree_util.tree_map_with_path(merge, states)


def final_part(values: chex.Array, fraction: float = 0.2) -> chex.Array:
    """The last `fraction` of the steps (at least one) along the last axis: where learning has happened."""
    steps = values.shape[-1]
    return values[..., steps - max(1, round(fraction * steps)) :]
