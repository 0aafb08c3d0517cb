"""Connection-level imitation: every connection of a one-layer VSML fitted to run nearest class mean's rule.

Why: distilling a hand-designed learner's *logits* (`--teacher`) gives VSML's A x B connections one shared
error through the mean over inputs, and by ES or backprop it stayed near chance for the budget of the
screens (docs/experiments.md). Nearest class mean is itself a sum over connections: its logit for class b
is, up to a per-example constant, sum_a (2 x_a mu_ab - mu_ab^2), and connection (a, b) sees x_a and the label
of b, so each connection can be given its own target. The fitness is the mean squared difference between
each connection's output (`VSML.connection_outputs`) and A / temperature times its term
(`ClassMean.connection_terms`): matched exactly, VSML's logits are class mean's divided by `temperature`.
The teacher reads the inputs as the connections see them (standardized with `vsml:standardize=true`) and
the same labels; VSML gets the feedback on its own predictions, as in any episode. Meant as a warm start by
backprop (`--outer backprop --teacher class_mean --teacher-level connections`), from which ES optimizes
the labels' cross-entropy (`--init-from`).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from metalearn.learners.base import Feedback, Learner, PyTree, TaskSpec
from metalearn.learners.class_mean import ClassMean
from metalearn.learners.vsml import VSML
from tasks.episodes import Episode


def check_imitation(learner: Learner, teacher: Learner, inner_batch: int = 1) -> None:
    """A one-paragraph error unless the pair is one connection-level imitation can run."""
    problems = []
    if not isinstance(teacher, ClassMean):
        problems.append(f"the teacher is {teacher.name}; only class_mean splits into per-connection terms")
    if not isinstance(learner, VSML) or learner.hidden or learner.groups != 1:
        problems.append("the learner must be a VSML with one layer and one group (no hidden, groups=1) and no "
                        "--truncation")
    if inner_batch != 1:
        problems.append(f"the inner batch is {inner_batch}; imitation reads one example per step")
    if problems:
        raise ValueError("teacher_level 'connections' fits each connection of a one-layer VSML to nearest class "
                         "mean's per-connection term, but " + "; ".join(problems) + ". Use --learner vsml "
                         "(options other than hidden and groups are fine) with --teacher class_mean and "
                         "--inner-batch 1, or --teacher-level logits to distil the logits of any teacher.")


class Imitation(NamedTuple):
    """Per step [T] of one episode."""

    loss: chex.Array  # mean squared difference between the connections' outputs and the scaled terms
    correct: chex.Array  # the learner's prediction was right
    target_power: chex.Array  # mean square of the scaled terms: loss / target_power is the relative error
    teacher_correct: chex.Array  # the summed terms' prediction was right: what a faithful copy would score


def imitation_episode(learner: VSML, meta_params: PyTree, key: chex.PRNGKey, episode: Episode, num_classes: int,
                      temperature: float) -> Imitation:
    """`learner` over `episode` as `run_episode` runs it, each step compared with the class-mean terms."""
    length, inputs = episode.x.shape
    teacher = ClassMean()
    spec = TaskSpec(inputs, num_classes, length)
    scale = inputs / temperature

    def step(carry, example):
        state, teacher_state, feedback = carry
        x, y, given = example
        state, logits = learner.step(meta_params, state, x, feedback)
        seen = learner.input_seen(state, x)
        teacher_state, _ = teacher.step({}, teacher_state, seen, feedback)
        target = jax.lax.stop_gradient(scale * teacher.connection_terms(teacher_state, seen))
        loss = jnp.mean((learner.connection_outputs(meta_params, state) - target) ** 2)
        next_feedback = Feedback.from_prediction(logits, y, given)
        return (state, teacher_state, next_feedback), Imitation(
            loss, jnp.argmax(logits, -1) == y, jnp.mean(target**2), jnp.argmax(target.sum(-1)) == y)

    carry = (learner.init_state(meta_params, key, spec), teacher.init_state({}, key, spec), Feedback.zeros(num_classes))
    return jax.lax.scan(step, carry, (episode.x, episode.y, episode.feedback_mask))[1]
