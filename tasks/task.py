"""A task distribution: data resident on the device plus the rule that draws an episode from it."""

from __future__ import annotations

import chex
from flax import struct

from tasks.episodes import Episode, Pool, sample_permuted_episode


@struct.dataclass
class Task:
    """A pytree (the pool is a leaf, so jit takes it as an argument) with static shape facts."""

    pool: Pool
    num_classes: int = struct.field(pytree_node=False)
    name: str = struct.field(pytree_node=False)

    @property
    def input_size(self) -> int:
        return self.pool.input_size

    def sample(self, key: chex.PRNGKey, length: int) -> Episode:
        """One episode of `length` steps: a pure function of `key`, jit- and vmap-able."""
        return sample_permuted_episode(key, self.pool, length, self.num_classes)
