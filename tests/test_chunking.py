"""`--chunk auto`: the members-per-kernel batch follows the learner's state size and the device budget."""

import pytest

from metalearn.learners import VSML, TaskSpec
from metalearn.outer import BackpropConfig, chunking
from metalearn.outer.es import ESConfig
from metalearn.training.config import MetaTrainConfig


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
    assert MetaTrainConfig().outer.chunk == "auto"
    assert ESConfig(chunk="8").chunk == 8
    assert MetaTrainConfig.from_json(MetaTrainConfig(outer=ESConfig(chunk=4)).to_json()).outer.chunk == 4
    assert MetaTrainConfig.from_flat({"chunk": "auto"}).outer.chunk == "auto"
    for bad in ("x", "0", 0):
        with pytest.raises(ValueError, match="chunk"):
            ESConfig(chunk=bad)


def test_resolve_fixes_auto_and_keeps_a_number():
    spec = TaskSpec(64, 10)
    auto = ESConfig(population=16).resolve(VSML(), spec, num_devices=2, episodes=1)
    assert isinstance(auto.chunk, int) and 1 <= auto.chunk <= 4  # at most the pairs of one device
    assert ESConfig(chunk=3).resolve(VSML(), spec, 2, 1) == ESConfig(chunk=3)
    assert BackpropConfig().resolve(VSML(), spec, 2, 1) == BackpropConfig()
    with pytest.raises(ValueError, match="auto"):
        ESConfig().build(lambda p, d: (0.0, 0.0), None, None)


def test_l2_size_read_from_a_linux_cache_folder(tmp_path):
    for index, (level, size) in enumerate([("1", "48K"), ("1", "32K"), ("2", "2048K"), ("3", "105M")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(level + "\n")
        (folder / "size").write_text(size + "\n")
    assert chunking.core_l2_bytes(tmp_path) == 2 * 2**20
    assert chunking.parse_cache_size("1M") == 2**20 and chunking.parse_cache_size("512") == 512
    assert chunking.core_l2_bytes(tmp_path / "missing") == chunking.FALLBACK_L2_BYTES
