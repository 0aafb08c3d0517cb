"""The embedded digits task and the permuted-label episode sampler."""

import jax
import numpy as np
import pytest

from tasks import load_task
from tasks.digits import load_digits_pools


def test_digits_pools_are_disjoint_standardized_and_cover_all_classes():
    train, test = load_digits_pools()
    assert train.x.shape[1] == test.x.shape[1] == 64
    assert train.x.shape[0] + test.x.shape[0] == 1797
    rows = {tuple(r) for r in np.asarray(train.x).round(4)}
    overlap = sum(tuple(r) in rows for r in np.asarray(test.x).round(4))
    assert overlap < 5  # a handful of digits are pixel-identical duplicates in the dataset itself
    x = np.asarray(train.x)
    varying = x.std(0) > 0
    np.testing.assert_allclose(x[:, varying].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(x[:, varying].std(0), 1, atol=1e-3)
    assert set(np.asarray(train.y)) == set(np.asarray(test.y)) == set(range(10))


def test_episode_shapes_and_permuted_labels():
    task = load_task("digits").train
    a = jax.jit(lambda k: task.sample(k, 200))(jax.random.key(0))
    assert a.x.shape == (200, 64) and a.y.shape == (200,) and a.feedback_mask.all()
    # Under a label permutation, identical images keep identical labels within an episode, and the
    # image->label map differs between episodes.
    pool = task.pool
    idx = np.arange(pool.x.shape[0])
    lookup = {tuple(np.asarray(pool.x[i]).round(5)): int(pool.y[i]) for i in idx}
    maps = []
    for seed in range(4):
        ep = task.sample(jax.random.key(seed), 300)
        mapping = {}
        for x, y in zip(np.asarray(ep.x), np.asarray(ep.y)):
            original = lookup[tuple(x.round(5))]
            assert mapping.setdefault(original, int(y)) == int(y)
        maps.append(tuple(sorted(mapping.items())))
    assert len(set(maps)) == 4


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="datasets: digits, mnist, fashion_mnist"):
        load_task("mnsit")


def test_scale_and_offset_transform_the_inputs_after_normalization_in_every_split_and_streams():
    plain, moved = load_task("digits"), load_task("digits:scale=-2,offset=0.5")
    for split in ("train", "test", "validation"):
        np.testing.assert_allclose(getattr(moved, split).pool.x, -2 * getattr(plain, split).pool.x + 0.5, rtol=1e-6)
        np.testing.assert_array_equal(getattr(moved, split).pool.y, getattr(plain, split).pool.y)
    stream = load_task("ordered:digits:per_class=2,queries=5,offset=3").test
    np.testing.assert_allclose(stream.pool.x, load_task("ordered:digits:per_class=2,queries=5").test.pool.x + 3)
    for bad, message in (("offset=nan", "offset must be a finite number"), ("scale=inf", "scale must be a finite"),
                         ("scale=0", "nonzero scale")):
        with pytest.raises(ValueError, match=message):
            load_task(f"digits:{bad}")
