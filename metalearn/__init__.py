"""metalearn: meta-learning learning algorithms with seed-shared evolution strategies in JAX."""
