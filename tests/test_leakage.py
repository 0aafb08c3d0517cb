"""No learner sees a label before it is scored on it: for every registered learner (and VSML's options that
change its state or its merge), inner batch, truncation and feedback mask, changing labels from step t on
leaves the losses before t unchanged, and the prediction at step t does not depend on label t (its losses
over every value of label t are one distribution's).
A learner built to peek fails both checks, so the checks can fail."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalearn.learners import LEARNERS, TaskSpec, make_learner
from metalearn.learners.base import NoMerge
from metalearn.learners.truncation import truncate
from metalearn.rollout.inner_loop import run_episode
from tasks import Episode

LENGTH, DIM, CLASSES = 12, 3, 4
SMALL = {"vsml": "vsml:lstm_size=4,msg_size=2,ticks=1", "meta_rnn": "meta_rnn:hidden=8",
         "lowrank": "lowrank:units=8,rank=2", "mlp_sgd": "mlp_sgd:hidden=8"}
# VSML's options that change what its state holds or how copies merge, each checked like a learner
VARIANTS = {"vsml+standardize": "vsml:lstm_size=4,msg_size=2,ticks=1,standardize=true",
            "vsml+single_pass": "vsml:lstm_size=4,msg_size=2,ticks=1,single_pass=true,hidden=3",
            "vsml+reference": "vsml:lstm_size=4,msg_size=2,ticks=1,merge_fraction=0.5,init_rand_proportion=0.5"}
MASKS = {"all feedback": np.ones(LENGTH, bool), "query phase": np.arange(LENGTH) < LENGTH // 2,
         "random": np.random.default_rng(0).random(LENGTH) < 0.6}


def leaks(losses_of, x, y, masks: dict) -> list[str]:
    """What `losses_of(x, labels, mask) -> [T]` reveals about labels it should not have seen (empty: none),
    under every feedback mask; every variant runs in one compiled call."""
    steps = np.arange(LENGTH)
    shift = np.asarray(jax.random.randint(jax.random.key(1), (LENGTH,), 1, CLASSES))
    future = [np.where(steps >= t, (y + shift) % CLASSES, y) for t in range(1, LENGTH)]
    current = [np.where(steps == t, c, y) for t in range(LENGTH) for c in range(CLASSES)]
    labels = np.stack([y, *future, *current])
    run = jax.jit(jax.vmap(jax.vmap(losses_of, (None, 0, None)), (None, None, 0)))
    found = []
    for name, losses in zip(masks, np.asarray(run(x, labels, jnp.asarray(np.stack(list(masks.values())))))):
        base, changed, per_label = losses[0], losses[1:LENGTH], losses[LENGTH:].reshape(LENGTH, CLASSES, LENGTH)
        found += [f"{name}: losses before step {t} change with labels from {t} on"
                  for t, row in zip(range(1, LENGTH), changed) if not np.allclose(row[:t], base[:t], rtol=1e-5, atol=1e-6)]
        mass = np.exp(-per_label[steps, :, steps]).sum(-1)  # step t's probabilities of every value of label t
        found += [f"{name}: the prediction at step {t} depends on label {t}"
                  for t in np.flatnonzero(~np.isclose(mass, 1, atol=1e-4))]
    return found


def episode_data(seed=0):
    kx, ky = jax.random.split(jax.random.key(seed))
    return jax.random.normal(kx, (LENGTH, DIM)), np.asarray(jax.random.randint(ky, (LENGTH,), 0, CLASSES))


def runner(learner, meta_params, batch):
    def losses_of(x, y, mask):
        episode = Episode(x=x, y=y, feedback_mask=mask)
        return run_episode(learner, meta_params, jax.random.key(2), episode, CLASSES, batch).loss
    return losses_of


@pytest.mark.parametrize("truncation", [0, 3])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", sorted(LEARNERS) + sorted(VARIANTS))
def test_no_learner_sees_a_label_before_it_is_scored(name, batch, truncation):
    learner = make_learner({**SMALL, **VARIANTS}.get(name, name))
    if batch > 1 and isinstance(learner, NoMerge):
        pytest.skip(f"{name} refuses inner batches (its per-example memory cannot be averaged)")
    meta = learner.init_meta_params(jax.random.key(0), TaskSpec(DIM, CLASSES, LENGTH))
    x, y = episode_data()
    assert leaks(runner(truncate(learner, truncation), meta, batch), x, y, MASKS) == []


@dataclasses.dataclass(frozen=True)
class Peeker:
    """Cheats through a side channel: its meta-parameters hold the episode's labels, and it predicts
    from the current and the next one."""

    name: ClassVar[str] = "peeker"

    def init_meta_params(self, key, spec):
        return {}

    def init_state(self, meta_params, key, spec):
        return {"t": jnp.int32(0)}

    def step(self, meta_params, state, x, feedback):
        labels, t = meta_params["labels"], state["t"]
        ahead = labels[jnp.minimum(t + 1, labels.shape[0] - 1)]
        logits = 3.0 * jax.nn.one_hot(labels[t], CLASSES) + jax.nn.one_hot(ahead, CLASSES)
        return {"t": t + 1}, logits


def test_a_learner_that_peeks_is_caught():
    def losses_of(x, y, mask):
        episode = Episode(x=x, y=y, feedback_mask=mask)
        return run_episode(Peeker(), {"labels": y}, jax.random.key(2), episode, CLASSES).loss

    x, y = episode_data()
    found = leaks(losses_of, x, y, {"all feedback": MASKS["all feedback"]})
    assert any("change with labels from" in f for f in found)
    assert any("depends on label" in f for f in found)
