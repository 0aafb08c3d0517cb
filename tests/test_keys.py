"""The key schedule: no two purposes of a run share a key, and the trainer draws from the schedule."""

import jax
import numpy as np

from metalearn.outer.es import ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.training import keys
from metalearn.training.config import MetaTrainConfig
from metalearn.training.loop import MetaTraining


def test_all_named_keys_of_a_run_are_distinct():
    for seed in (0, 1, 7):
        named = keys.named_keys(seed, generations=200)
        data = {tuple(np.asarray(jax.random.key_data(k)).tolist()) for k in named.values()}
        assert len(data) == len(named) == 4 + 3 * 200


def test_the_old_schedule_would_fail_the_test():
    """What the schedule replaced: fold_in(k, i) == split(k, n)[i], so init (fold 0) was generation 0's key."""
    root = jax.random.key(0)
    same = jax.random.key_data(jax.random.fold_in(root, 0)), jax.random.key_data(jax.random.split(root, 3)[0])
    np.testing.assert_array_equal(*same)


def test_the_trainer_uses_the_schedule(devices):
    config = MetaTrainConfig(outer=ESConfig(population=16, chunk=2), episode_length=10, seed=3,
                             learner="vsml:lstm_size=4,msg_size=2,ticks=1")
    training = MetaTraining(config, make_mesh(8))
    state = training.init()
    expected = training.learner.init_meta_params(keys.init(3), training.spec)
    for a, b in zip(jax.tree.leaves(state.es.params), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(state.key, jax.random.key_data(keys.root(3)))
    np.testing.assert_array_equal(jax.random.key_data(training.eval_key), jax.random.key_data(keys.evaluation(3)))
