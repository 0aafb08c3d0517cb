"""The meta-training config: nested outer settings, JSON round trips, configs written before the nesting."""

import pytest

from metalearn.outer import BackpropConfig, ESConfig
from metalearn.training.config import MetaTrainConfig

FLAT_ES = {"learner": "vsml", "train_tasks": ["digits"], "test_tasks": ["digits"], "outer": "es", "truncation": 0,
           "population": 64, "sigma": 0.1, "lr": 0.025, "generations": 3, "episode_length": 100, "inner_batch": 1,
           "episodes_per_member": 1, "eval_every": 25, "eval_episodes": 64, "checkpoint_every": 25, "chunk": 4,
           "seed": 0}  # a run.json config as written before the outer settings were nested


def test_json_round_trip_keeps_the_outer_config():
    for outer in (ESConfig(population=32, sigma=0.2, chunk=2), BackpropConfig(truncation=7)):
        config = MetaTrainConfig(outer=outer, generations=5)
        assert MetaTrainConfig.from_json(config.to_json()) == config
        assert MetaTrainConfig.from_flat(config.flat()) == config


def test_flat_configs_written_before_nesting_still_load():
    assert MetaTrainConfig.from_json(FLAT_ES).outer == ESConfig(population=64, sigma=0.1, chunk=4)
    backprop = MetaTrainConfig.from_json({**FLAT_ES, "outer": "backprop", "truncation": 5})
    assert backprop.outer == BackpropConfig(truncation=5) and backprop.generations == 3


def test_settings_of_another_optimizer_and_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match=r"\['population'\] are settings of another outer optimizer"):
        MetaTrainConfig.from_flat({"outer": "backprop", "population": 4})
    with pytest.raises(ValueError, match="unknown outer optimizer 'pes'; known: backprop, es"):
        MetaTrainConfig.from_flat({"outer": "pes"})
    with pytest.raises(ValueError, match="es: sigma must be positive"):
        ESConfig(sigma=-1.0)
    with pytest.raises(ValueError, match="truncation must be >= 0"):
        BackpropConfig(truncation=-1)
