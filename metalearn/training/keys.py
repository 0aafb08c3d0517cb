"""The key schedule of a run: every random purpose draws from its own branch of the seed's root key.

In JAX `fold_in(k, i)` equals `split(k, n)[i]`, so folding small constants and generation indices into the
same key makes purposes collide (the init key was generation 0's, the evaluation key generation 1's). Here
the root key is only ever folded with one distinct constant per purpose, and generations get a branch of
their own that their index is folded into; nothing else derives keys from the root.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax

# One constant per purpose; generation g's keys come from fold_in(fold_in(root, GENERATIONS), g).
INIT, GENERATIONS, EVALUATION, VALIDATION, TUNING = range(5)


class GenerationKeys(NamedTuple):
    noise: chex.PRNGKey  # the ES population's seed-shared noise
    task: chex.PRNGKey  # which episodes the meta-training tasks give
    state: chex.PRNGKey  # the learners' initial states on those episodes


def root(seed: int) -> chex.PRNGKey:
    return jax.random.key(seed)


def init(seed: int) -> chex.PRNGKey:
    """The meta-parameters' initialization."""
    return jax.random.fold_in(root(seed), INIT)


def generation(run_key: chex.PRNGKey, index: chex.Array | int) -> GenerationKeys:
    """Keys of generation `index` (traceable) from the run's root key."""
    key = jax.random.fold_in(jax.random.fold_in(run_key, GENERATIONS), index)
    return GenerationKeys(*jax.random.split(key, 3))


def evaluation(seed: int) -> chex.PRNGKey:
    """Meta-test episodes: the same at every evaluation of a run, for its baselines and for meta_test.py."""
    return jax.random.fold_in(root(seed), EVALUATION)


def validation(seed: int) -> chex.PRNGKey:
    """Meta-validation episodes, which choose the best checkpoint."""
    return jax.random.fold_in(root(seed), VALIDATION)


def tuning(seed: int) -> chex.PRNGKey:
    """Episodes on which hand-designed baselines' hyperparameters are chosen."""
    return jax.random.fold_in(root(seed), TUNING)


def named_keys(seed: int, generations: int) -> dict[str, chex.PRNGKey]:
    """Every named key of a run with `generations` generations, for tests and inspection."""
    keys = {"init": init(seed), "evaluation": evaluation(seed), "validation": validation(seed),
            "tuning": tuning(seed)}
    for g in range(generations):
        keys.update({f"generation {g} {name}": k for name, k in generation(root(seed), g)._asdict().items()})
    return keys
