"""`--chunk auto`: the members-per-kernel batch follows the learner's state size and the device budget."""

import pytest

from metalearn import chunking
from metalearn.config import MetaTrainConfig
from metalearn.learners import VSML, TaskSpec


def test_bigger_state_gets_a_smaller_chunk_within_bounds(monkeypatch):
    monkeypatch.setattr(chunking, "CPU_BUDGET_BYTES", 64 * 2**20)
    small = chunking.auto_chunk(VSML(), TaskSpec(64, 10), pairs_per_device=1000)
    large = chunking.auto_chunk(VSML(), TaskSpec(784, 10), pairs_per_device=1000)
    assert 1 <= large < small <= 1000
    assert chunking.auto_chunk(VSML(), TaskSpec(64, 10), pairs_per_device=2) == 2  # never more than there are
    monkeypatch.setattr(chunking, "CPU_BUDGET_BYTES", 1)
    assert chunking.auto_chunk(VSML(), TaskSpec(784, 10), pairs_per_device=8) == 1  # never less than one pair


def test_working_set_grows_with_the_state():
    small = chunking.member_step_bytes(VSML(), TaskSpec(64, 10))
    large = chunking.member_step_bytes(VSML(), TaskSpec(784, 10))
    assert large > 10 * small  # 784 vs 64 inputs: about 12x the connections


def test_config_chunk_from_the_command_line():
    assert MetaTrainConfig().chunk == "auto"
    assert MetaTrainConfig(chunk="8").chunk == 8
    assert MetaTrainConfig.from_json(MetaTrainConfig(chunk=4).to_json()).chunk == 4
    for bad in ("x", "0", 0):
        with pytest.raises(ValueError, match="chunk"):
            MetaTrainConfig(chunk=bad)
