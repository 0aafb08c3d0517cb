"""Episodes: the unit of data a learning algorithm learns from online.

An `Episode` is a stream of T labelled examples. The learner predicts each example, is scored, and only then
receives feedback; `feedback_mask` marks the steps where feedback is given (all of them in ordinary
episodes), so a query phase without feedback is one mask away.
"""

from __future__ import annotations

import chex


@chex.dataclass(frozen=True)
class Episode:
    """T examples in the order the learner sees them."""

    x: chex.Array  # [T, input_size] float32
    y: chex.Array  # [T] int32, in [0, num_classes)
    feedback_mask: chex.Array  # [T] bool: does the learner get feedback after predicting step t?


@chex.dataclass(frozen=True)
class Pool:
    """Labelled examples resident on the device; a pytree, so it is a jit argument, not a baked constant."""

    x: chex.Array  # [N, input_size] float32
    y: chex.Array  # [N] int32

    @property
    def input_size(self) -> int:
        return self.x.shape[-1]
