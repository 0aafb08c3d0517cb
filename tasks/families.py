"""Task families: rules that turn data on the device into episodes, each a pure function of a PRNG key.

Every family is a flax struct dataclass: its arrays (pools, index tables) are pytree leaves, so a task is
an ordinary jit argument; its options are static fields. All share the `Task` interface: `name`,
`num_classes`, `input_size` and `sample(key, length) -> Episode`.
"""

from __future__ import annotations

from typing import Protocol

import chex
import jax
import jax.numpy as jnp
from flax import struct

from tasks.episodes import Episode, Pool

# Fixed tasks (N permutations or projections) are drawn from this key, so task i is the same in every run.
FIXED_TASKS_KEY = 20211206


class Task(Protocol):
    name: str
    num_classes: int

    @property
    def input_size(self) -> int: ...

    def sample(self, key: chex.PRNGKey, length: int) -> Episode: ...

    def episode_length(self, requested: int) -> int:
        """Steps of the episodes `sample` returns when asked for `requested` (a stream may fix its own)."""
        ...


class _RequestedLength:
    def episode_length(self, requested: int) -> int:
        return requested


def _task_key(key: chex.PRNGKey, count: int) -> chex.PRNGKey:
    """A fresh task per episode (count 0) or one of `count` fixed tasks."""
    if count == 0:
        return key
    return jax.random.fold_in(jax.random.key(FIXED_TASKS_KEY), jax.random.randint(key, (), 0, count))


def _all_feedback(x: chex.Array, y: chex.Array) -> Episode:
    return Episode(x=x, y=y.astype(jnp.int32), feedback_mask=jnp.ones(y.shape, bool))


@struct.dataclass
class DatasetEpisodes(_RequestedLength):
    """Examples drawn with replacement from a pool; per task: label permutation, class subset, projection.

    - permute: relabel classes by a random permutation per task (`permutations` N > 0: one of N fixed ones);
    - classes k > 0: each task uses k random classes, relabelled 0..k-1 (so num_classes = k);
    - project d > 0: inputs multiplied by a random D x d Gaussian matrix / sqrt(D), one per task
      (`projections` N > 0: one of N fixed matrices), so every task is a new input distribution;
    - jitter s > 0: per task, input unit u becomes x_u exp(s z_u) + s z'_u (z, z' standard normal), before
      any projection: new per-unit scales and offsets every episode while each unit keeps its meaning, so a
      learner meta-trained on it cannot rely on one dataset's pixel statistics.
    """

    pool: Pool
    pool_classes: int = struct.field(pytree_node=False)  # labels in the pool are < pool_classes
    name: str = struct.field(pytree_node=False)
    permute: bool = struct.field(pytree_node=False, default=True)
    permutations: int = struct.field(pytree_node=False, default=0)
    classes: int = struct.field(pytree_node=False, default=0)
    project: int = struct.field(pytree_node=False, default=0)
    projections: int = struct.field(pytree_node=False, default=0)
    jitter: float = struct.field(pytree_node=False, default=0.0)

    @property
    def input_size(self) -> int:
        return self.project or self.pool.input_size

    @property
    def num_classes(self) -> int:
        return self.classes or self.pool_classes

    def sample(self, key: chex.PRNGKey, length: int) -> Episode:
        k_index, k_perm = jax.random.split(key)
        k_classes, k_proj = jax.random.fold_in(k_index, 1), jax.random.fold_in(k_perm, 1)
        if self.classes:
            chosen = jax.random.permutation(k_classes, self.pool_classes)[: self.classes]
            allowed = (self.pool.y[:, None] == chosen[None, :]).any(-1)
            idx = jax.random.choice(k_index, self.pool.y.shape[0], (length,), p=allowed / allowed.sum())
            y = jnp.argmax(self.pool.y[idx][:, None] == chosen[None, :], axis=-1)  # position in `chosen`
        else:
            idx = jax.random.randint(k_index, (length,), 0, self.pool.y.shape[0])
            y = self.pool.y[idx]
        if self.permute:
            y = jax.random.permutation(_task_key(k_perm, self.permutations), self.num_classes)[y]
        x = self.pool.x[idx]
        if self.jitter:  # a key of its own: the draws above stay as they were without jitter
            gain, shift = self.jitter * jax.random.normal(jax.random.fold_in(k_index, 2), (2, x.shape[-1]))
            x = x * jnp.exp(gain) + shift
        if self.project:
            d = x.shape[-1]
            w = jax.random.normal(_task_key(k_proj, self.projections), (d, self.project)) / jnp.sqrt(d)
            x = x @ w
        return _all_feedback(x, y)


@struct.dataclass
class MemorizeEpisodes(_RequestedLength):
    """Random-label memorization: `items` inputs from the pool get random labels; the episode shows them
    again and again in random order, so the only way to score is to remember each one."""

    pool: Pool
    num_classes: int = struct.field(pytree_node=False)
    name: str = struct.field(pytree_node=False)
    items: int = struct.field(pytree_node=False, default=10)

    @property
    def input_size(self) -> int:
        return self.pool.input_size

    def sample(self, key: chex.PRNGKey, length: int) -> Episode:
        k_items, k_labels, k_order = jax.random.split(key, 3)
        # Distinct pool examples: a repeated one would be one input with two labels, impossible to memorize.
        items = jax.random.choice(k_items, self.pool.y.shape[0], (self.items,), replace=False)
        labels = jax.random.randint(k_labels, (self.items,), 0, self.num_classes)
        order = jax.random.randint(k_order, (length,), 0, self.items)
        return _all_feedback(self.pool.x[items][order], labels[order])


@struct.dataclass
class SumEpisodes(_RequestedLength):
    """Synthetic: standard normal inputs, label 1 where they sum to >= 0. Needs no data."""

    dim: int = struct.field(pytree_node=False, default=64)
    name: str = struct.field(pytree_node=False, default="sum")
    num_classes: int = struct.field(pytree_node=False, default=2)

    @property
    def input_size(self) -> int:
        return self.dim

    def sample(self, key: chex.PRNGKey, length: int) -> Episode:
        x = jax.random.normal(key, (length, self.dim))
        return _all_feedback(x, (x.sum(-1) >= 0).astype(jnp.int32))


@struct.dataclass
class OrderedStream:
    """OrderedMNIST-style continual learning: a training phase of (image, label) pairs ordered by class,
    then a query phase of held-out images with no feedback, on which accuracy is reported.

    Training phase: `per_class` examples of each class, classes in `order` ('sorted' 0..C-1, or 'random'),
    in groups of `group` classes whose examples are interleaved (group 1: strictly one class after another;
    group k: class-incremental). Query phase: `queries` examples of `query_pool` (disjoint from `pool`).
    With `permute` the classes are relabelled by a random permutation per episode, in both phases, so a
    learner has to learn this episode's labels rather than remember the dataset's. The episode length is
    per_class x classes + queries whatever `length` is asked for.
    """

    pool: Pool
    query_pool: Pool
    by_class: chex.Array  # [C, max per class] indices into pool, padded by repetition
    class_counts: chex.Array  # [C]
    num_classes: int = struct.field(pytree_node=False)
    name: str = struct.field(pytree_node=False)
    per_class: int = struct.field(pytree_node=False, default=20)
    queries: int = struct.field(pytree_node=False, default=100)
    order: str = struct.field(pytree_node=False, default="sorted")
    group: int = struct.field(pytree_node=False, default=1)
    permute: bool = struct.field(pytree_node=False, default=True)

    @property
    def input_size(self) -> int:
        return self.pool.input_size

    def episode_length(self, requested: int) -> int:
        return self.per_class * self.num_classes + self.queries

    def sample(self, key: chex.PRNGKey, length: int) -> Episode:
        k_order, k_pick, k_shuffle, k_query, k_perm = jax.random.split(key, 5)
        c = self.num_classes
        classes = jnp.arange(c) if self.order == "sorted" else jax.random.permutation(k_order, c)
        step_class = jnp.repeat(classes, self.per_class)  # [C * per_class], grouped by class
        if self.group > 1:  # shuffle within each block of `group` classes
            block = self.group * self.per_class
            noise = jax.random.uniform(k_shuffle, step_class.shape)
            rank = jnp.argsort(jnp.arange(step_class.shape[0]) // block + noise)
            step_class = step_class[rank]
        pick = jax.random.randint(k_pick, step_class.shape, 0, self.class_counts[step_class])
        idx = self.by_class[step_class, pick]
        q_idx = jax.random.randint(k_query, (self.queries,), 0, self.query_pool.y.shape[0])
        y = jnp.concatenate([self.pool.y[idx], self.query_pool.y[q_idx]]).astype(jnp.int32)
        if self.permute:
            y = jax.random.permutation(k_perm, c)[y]
        return Episode(
            x=jnp.concatenate([self.pool.x[idx], self.query_pool.x[q_idx]]),
            y=y,
            feedback_mask=jnp.arange(self.episode_length(length)) < step_class.shape[0],
        )
