"""The inner loop: a learner learns online over one episode (predict, be scored, then get feedback)."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from metalearn.learners.base import Feedback, Learner, PyTree, TaskSpec
from metalearn.rollout.imitation import imitation_episode
from tasks.episodes import Episode


class EpisodeResult(NamedTuple):
    """Per-step scores of the online predictions, made before each label was revealed."""

    loss: chex.Array  # [T] cross-entropy against the labels, or against `targets` when given
    correct: chex.Array  # [T] bool
    logits: chex.Array  # [T, C]


def run_episode(learner: Learner, meta_params: PyTree, key: chex.PRNGKey, episode: Episode, num_classes: int,
                batch: int = 1, targets: chex.Array | None = None) -> EpisodeResult:
    """Unroll `learner` over `episode` with `lax.scan`; `key` draws its initial learnable state.

    `targets` [T, C] (class probabilities per step, e.g. a teacher's online predictions) replace the labels
    in the loss; the feedback and `correct` still use the labels.

    With `batch` B > 1 the episode is consumed B examples per step: each of B copies of the state absorbs
    the feedback on its own previous example and predicts its next one, then the copies' states are merged
    by the learner's own rule (`learner.merge`: VSML's average, for online SGD minibatch SGD; kNN refuses).
    """
    length = episode.y.shape[0]
    if targets is not None and targets.shape != (length, num_classes):
        raise ValueError(f"targets must be [steps, classes] = {(length, num_classes)} class probabilities, one row "
                         f"per step of the episode; got shape {targets.shape}")
    state = learner.init_state(meta_params, key, TaskSpec(episode.x.shape[-1], num_classes, length))
    if batch > 1:
        if length % batch:
            raise ValueError(f"episode length {length} does not divide into inner batches of {batch}")
        state = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (batch, *jnp.shape(leaf))), state)

    def learner_step(meta_params, state, x, feedback):
        if batch == 1:
            return learner.step(meta_params, state, x, feedback)
        states, logits = jax.vmap(learner.step, (None, 0, 0, 0))(meta_params, state, x, feedback)
        return learner.merge(states), logits

    def step(carry, example):
        state, feedback = carry
        x, y, given, target = example
        state, logits = learner_step(meta_params, state, x, feedback)
        if targets is None:
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        else:
            loss = optax.softmax_cross_entropy(logits, target)
        next_feedback = Feedback.from_prediction(logits, y, given)
        return (state, next_feedback), (loss, jnp.argmax(logits, -1) == y, logits)

    per_step = (episode.x, episode.y, episode.feedback_mask, episode.y if targets is None else targets)  # y: unused
    shaped = [a.reshape(length // batch, batch, *a.shape[1:]) if batch > 1 else a for a in per_step]
    feedback = Feedback.zeros(num_classes)
    if batch > 1:
        feedback = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (batch, num_classes)), feedback)
    _, (loss, correct, logits) = jax.lax.scan(step, (state, feedback), tuple(shaped))
    return EpisodeResult(loss.reshape(length), correct.reshape(length), logits.reshape(length, num_classes))


class Teacher(NamedTuple):
    """A hand-designed learner whose online predictions, softened by `temperature`, are the targets of
    distillation. It reads the episode one example per step whatever the student's inner batch, and under ES
    every member recomputes them (cheap next to the student for the hand-designed learners). `level`
    'connections' fits each of a VSML's connections to the teacher's per-connection term instead
    (`imitation.py`)."""

    learner: Learner
    meta_params: PyTree
    temperature: float = 1.0
    level: str = "logits"

    def targets(self, key: chex.PRNGKey, episode: Episode, num_classes: int) -> chex.Array:
        """[T, C] class probabilities: the teacher's prediction at each step, made before the label."""
        logits = run_episode(self.learner, self.meta_params, key, episode, num_classes).logits
        return jax.lax.stop_gradient(jax.nn.softmax(logits / self.temperature))


def mean_fitness(learner: Learner, meta_params: PyTree, data: tuple, num_classes: int, batch: int = 1,
                 teacher: Teacher | None = None) -> tuple[chex.Array, chex.Array]:
    """The meta-training fitness: mean cross-entropy (to minimise) and accuracy over `data`, a tuple over
    tasks of (init_keys [E], episodes [E, T, ...]), averaged over each task's episodes, then over tasks.
    With a `teacher` the cross-entropy is against its online predictions (distillation), not the labels, or
    at `level` 'connections' the loss is the connections' squared distance to the teacher's terms."""
    losses, accs = [], []
    for init_keys, episodes in data:
        def episode_result(k, ep):
            if teacher is not None and teacher.level == "connections":
                return imitation_episode(learner, meta_params, k, ep, num_classes, teacher.temperature)[:2]
            targets = None if teacher is None else teacher.targets(k, ep, num_classes)
            result = run_episode(learner, meta_params, k, ep, num_classes, batch, targets)
            return result.loss, result.correct

        loss, correct = jax.vmap(episode_result)(init_keys, episodes)
        losses.append(loss.mean())
        accs.append(correct.mean())
    return jnp.mean(jnp.stack(losses)), jnp.mean(jnp.stack(accs))


def final_part(values: chex.Array, fraction: float = 0.2) -> chex.Array:
    """The last `fraction` of the steps (at least one) along the last axis: where learning has happened."""
    steps = values.shape[-1]
    return values[..., steps - max(1, round(fraction * steps)) :]
