"""The outer-optimizer seam: a third optimizer is one config class plus one registry entry, and the trainer,
the flat/nested config forms and the metrics follow without other changes."""

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalearn.outer import OUTER, OuterMetrics, OuterOptimizer, OuterState
from metalearn.outer.base import optax_init
from metalearn.outer.es import pair_noise
from metalearn.outer.mesh import make_mesh
from metalearn.training.config import MetaTrainConfig
from metalearn.training.loop import MetaTraining


@dataclasses.dataclass(frozen=True)
class HillClimbConfig:
    """Try one Gaussian step per generation; keep it if its fitness is lower (optax is not used)."""

    step_size: float = 0.1
    name: ClassVar[str] = "hill_climb"

    def build(self, fitness_fn, optimizer, mesh) -> OuterOptimizer:
        def step(state, key, data):
            trial = jax.tree.map(lambda p, e: p + self.step_size * e, state.params, pair_noise(key, 0, state.params))
            (f0, a0), (f1, a1) = fitness_fn(state.params, data), fitness_fn(trial, data)
            params = jax.tree.map(lambda old, new: jnp.where(f1 < f0, new, old), state.params, trial)
            return OuterState(params, state.opt_state), OuterMetrics(jnp.stack([f0, f1]), jnp.stack([a0, a1]),
                                                                     jnp.float32(0.0))
        return OuterOptimizer(optax_init(optimizer), step)

    def wrap(self, learner):
        return learner

    def check(self, num_devices, episodes):
        pass

    def resolve(self, learner, spec, num_devices, episodes):
        return self


@pytest.mark.slow
def test_a_new_optimizer_is_one_class_and_one_registry_entry(monkeypatch, devices):
    monkeypatch.setitem(OUTER, HillClimbConfig.name, HillClimbConfig)
    config = MetaTrainConfig.from_flat({"outer": "hill_climb", "step_size": 0.3, "learner": "meta_rnn:hidden=4",
                                        "episode_length": 10, "generations": 8})
    assert config.outer == HillClimbConfig(0.3) and MetaTrainConfig.from_json(config.to_json()) == config
    training = MetaTraining(config, make_mesh(1))
    state = training.init()
    start_params = jax.tree.map(np.asarray, state.es.params)  # the state is donated to the generation step
    for _ in range(config.generations):
        state, metrics = training.generation_step(state, training.train_tasks)
        assert metrics.fitness.shape == (2,) and np.isfinite(metrics.fitness).all()
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(start_params), jax.tree.leaves(state.es.params))]
    assert all(moved), "some trial step should have been kept"
