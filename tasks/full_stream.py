"""The OrderedMNIST benchmark's stream: every training pair exactly once, sorted by class, then every test
image once as a query without feedback.

Unlike the `ordered:` task family (a few examples per class, drawn with replacement, for meta-training),
this is the benchmark as defined: the whole train split in one pass. Only the order within each class (and,
with order='random', the order of the classes) depends on the seed, through an explicit PRNG key.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from tasks.datasets import CATALOGUE
from tasks.episodes import Pool
from tasks.registry import DataOptions, load_pools

DATASETS = tuple(name.replace("-", "_") for name in CATALOGUE)
ORDERS = ("sorted", "random")


class StreamData(NamedTuple):
    """A dataset's preprocessed splits, in stored order; `subset` > 0 marks a cut-down (non-benchmark) copy."""

    train_x: jax.Array  # [N, D]
    train_y: jax.Array  # [N]
    query_x: jax.Array  # [Q, D] the test split
    query_y: jax.Array  # [Q]
    num_classes: int
    name: str  # e.g. 'mnist 7x7'
    subset: int = 0

    @property
    def input_size(self) -> int:
        return self.train_x.shape[-1]


def first_per_class(y: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """Indices of the first `n` examples of each class, in stored order (a quick look, not the benchmark)."""
    return np.sort(np.concatenate([np.flatnonzero(y == c)[:n] for c in range(num_classes)]))


def check_every_class(y: np.ndarray, num_classes: int, what: str) -> None:
    missing = np.flatnonzero(np.bincount(y, minlength=num_classes) == 0)
    if missing.size:
        raise ValueError(f"{what} has no examples of class(es) {missing.tolist()} (of {num_classes}); a class-"
                         f"sorted stream needs every class. Use a complete copy of the dataset.")


def load_stream_data(dataset: str, resize: int, subset: int = 0, data_dir: str = "") -> StreamData:
    """A MNIST-family dataset resized to `resize` x `resize`, scaled by the train split's global mean and std."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    if resize < 1 or 28 % resize:
        raise ValueError(f"resize must divide 28 (7, 14 or 28), got {resize}")
    train, validation, test, num_classes = load_pools(dataset, DataOptions(resize=resize, data_dir=data_dir))
    # the benchmark feeds the whole train split: meta-training's validation slice goes back in
    train = Pool(x=jnp.concatenate([train.x, validation.x]), y=jnp.concatenate([train.y, validation.y]))
    splits = []
    for split, pool in (("train", train), ("test", test)):
        y = np.asarray(pool.y)
        check_every_class(y, num_classes, f"the {split} split of {dataset}")
        keep = first_per_class(y, subset, num_classes) if subset else slice(None)
        splits += [pool.x[keep], pool.y[keep]]
    return StreamData(*splits, num_classes=num_classes, name=f"{dataset} {resize}x{resize}", subset=subset)


def stream_order(key: chex.PRNGKey, labels: jax.Array, num_classes: int, order: str = "sorted") -> jax.Array:
    """A permutation of the training examples grouped by class: classes 0, 1, ... ('sorted') or in a random
    order ('random'); within each class a random order. Every example appears exactly once."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    k_classes, k_within = jax.random.split(key)
    classes = jnp.arange(num_classes) if order == "sorted" else jax.random.permutation(k_classes, num_classes)
    position = jnp.argsort(classes)  # position[c]: where class c comes in the stream
    shuffled = jax.random.permutation(k_within, labels.shape[0])
    return shuffled[jnp.argsort(position[labels[shuffled]], stable=True)]
