"""Running per-feature mean and variance of the inputs an episode has shown so far, to standardize them.

Online (Welford's update), so a step's statistics include its own input and earlier ones, never later ones:
a learner that standardizes with them peeks at nothing. The statistics are a state of 2 D + 1 floats (mean,
variance, count). Inner-batch copies that started equal pool exactly (`pool`): the mean of the copies'
means, and the mean of their variances plus the variance of their means, which is the mean and variance of
every example the copies have seen together. Robust to the input's scale and offset by construction: the
standardized input of x and of a x + b (a > 0) is the same, up to `EPS`.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from metalearn.learners.base import PyTree

EPS = 1e-8  # added to the variance: a feature that has not varied yet standardizes to 0


def init(size: int) -> PyTree:
    return {"mean": jnp.zeros((size,)), "var": jnp.zeros((size,)), "count": jnp.zeros(())}


def update(moments: PyTree, x: chex.Array) -> PyTree:
    """The statistics with `x` added (the variance is the population variance of the inputs seen)."""
    count = moments["count"] + 1.0
    delta = x - moments["mean"]
    mean = moments["mean"] + delta / count
    var = moments["var"] + (delta * (x - mean) - moments["var"]) / count
    return {"mean": mean, "var": var, "count": count}


def standardize(moments: PyTree, x: chex.Array, over_all: bool = False) -> chex.Array:
    """x standardized per input unit, or with `over_all` by one mean and variance over all units' values
    (those of every unit and example so far pooled), which keeps the units' relative scales: per unit, a unit
    that has barely varied (an image's border) is scaled up to the size of the informative ones."""
    mean, var = _merged(moments["mean"], moments["var"], -1) if over_all else (moments["mean"], moments["var"])
    return (x - mean) / jnp.sqrt(var + EPS)


def standardize_example(x: chex.Array) -> chex.Array:
    """x standardized over its own features (the last axis): no statistics carried between examples."""
    return (x - jnp.mean(x, axis=-1, keepdims=True)) / jnp.sqrt(jnp.var(x, axis=-1, keepdims=True) + EPS)


def unit_weights(moments: PyTree) -> chex.Array:
    """Each unit's variance over the units' mean variance: the relative scales per-unit standardization removes."""
    return moments["var"] / (jnp.mean(moments["var"], axis=-1, keepdims=True) + EPS)


def _merged(mean: chex.Array, var: chex.Array, axis: int) -> tuple[chex.Array, chex.Array]:
    """Mean and variance of the union of equally large groups with these means and variances along `axis`."""
    merged_mean = jnp.mean(mean, axis=axis, keepdims=True)
    return merged_mean, jnp.mean(var + (mean - merged_mean) ** 2, axis=axis, keepdims=True)


def pool(copies: PyTree) -> PyTree:
    """B copies' statistics (leading axis B) merged into those of all their examples, broadcast back to B.

    The count stays each copy's own: the next update then weighs every copy's new input as the pooled
    stream would (each copy adds one example to B t seen, 1 / (t + 1) of a copy's share)."""
    mean, var = _merged(copies["mean"], copies["var"], 0)
    pooled = {"mean": mean, "var": var, "count": copies["count"].mean(0)}
    return jax.tree.map(lambda leaf, like: jnp.broadcast_to(leaf, like.shape), pooled, copies)
