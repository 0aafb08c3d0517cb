"""Fixed, disjoint parts of a pool: the meta-validation slice of a train split, and a stream's two phases.

Both are drawn per class from a fixed seed, so every class of the pool is in both parts (a stream needs
every class) and the parts never change between runs.
"""

from __future__ import annotations

import numpy as np

from tasks.episodes import Pool

VALIDATION_FRACTION = 0.1  # of each meta-training dataset's train split, never sampled in meta-training
_SEED = 0


def hold_out(pool: Pool, fraction: float, what: str) -> tuple[Pool, Pool]:
    """(rest, held out): a fixed random `fraction` of each present class's examples (at least one, and at
    least one left) is held out; both parts keep the pool's order."""
    y = np.asarray(pool.y)
    rng = np.random.default_rng(_SEED)
    held = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        if len(members) < 2:
            raise ValueError(f"{what} has only {len(members)} example of class {c}, too few to hold out "
                             f"{fraction:.0%} of each class (at least one) and keep the rest; use a larger "
                             f"dataset or a larger examples=.")
        held.append(members[: min(max(1, round(fraction * len(members))), len(members) - 1)])
    mask = np.zeros(len(y), bool)
    mask[np.concatenate(held)] = True
    rest, out = np.flatnonzero(~mask), np.flatnonzero(mask)
    return Pool(x=pool.x[rest], y=pool.y[rest]), Pool(x=pool.x[out], y=pool.y[out])
