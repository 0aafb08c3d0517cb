"""scikit-learn's bundled 8x8 digits: the embedded default task that needs no download."""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from tasks.episodes import Pool

NUM_CLASSES = 10
_SPLIT_SEED = 0  # fixed: the meta-train / meta-test split must never change between runs
_TRAIN_FRACTION = 0.6


def load_digits_pools() -> tuple[Pool, Pool]:
    """(meta-train pool, meta-test pool) of 1,797 digits, split 60/40 per class, standardized.

    Per-pixel mean and std come from the meta-train pool only; constant pixels (std 0) map to 0.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float32)
    y = data.target.astype(np.int32)
    rng = np.random.default_rng(_SPLIT_SEED)
    train_idx, test_idx = [], []
    for c in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(y == c))
        cut = int(round(_TRAIN_FRACTION * len(members)))
        train_idx.append(members[:cut])
        test_idx.append(members[cut:])
    train_idx, test_idx = np.concatenate(train_idx), np.concatenate(test_idx)
    mean = x[train_idx].mean(0)
    std = x[train_idx].std(0)
    x = np.where(std > 0, (x - mean) / np.where(std > 0, std, 1.0), 0.0).astype(np.float32)
    return (
        Pool(x=jnp.asarray(x[train_idx]), y=jnp.asarray(y[train_idx])),
        Pool(x=jnp.asarray(x[test_idx]), y=jnp.asarray(y[test_idx])),
    )
