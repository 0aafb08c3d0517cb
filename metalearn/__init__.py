"""metalearn: meta-learning learning algorithms with seed-shared evolution strategies in JAX."""

from metalearn.training.run import Run, load_run

__all__ = ["Run", "load_run"]
