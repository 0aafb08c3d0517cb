"""Shared helpers of the learner tests: a small task shape, a learner's initial pytrees, feedback."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from metalearn.learners import Feedback, TaskSpec

SPEC = TaskSpec(input_size=12, num_classes=5)


def init(learner, seed=0, spec=SPEC):
    meta = learner.init_meta_params(jax.random.key(seed), spec)
    return meta, learner.init_state(meta, jax.random.key(seed + 1), spec)


def feedback(label, logits=None, num_classes=SPEC.num_classes):
    logits = jnp.zeros(num_classes) if logits is None else logits
    return Feedback.from_prediction(logits, jnp.asarray(label), jnp.asarray(True))


def trees_equal(a, b) -> bool:
    """Same structure, and leaves of the same values, shapes and dtypes."""
    if jax.tree.structure(a) != jax.tree.structure(b):
        return False
    return all(np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(x, y)
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@partial(jax.jit, static_argnums=(2, 3))
def task_data(task, key, count, length):
    """One task's data as MetaTraining.generation builds it: (init_keys [count], episodes [count, T, ...])."""
    k_task, k_init = jax.random.split(key)
    return jax.random.split(k_init, count), jax.vmap(lambda k: task.sample(k, length))(jax.random.split(k_task, count))
