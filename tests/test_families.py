"""Task families and the task registry: ordered streams, dataset episodes, memorization, sums, spec errors."""

import functools
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from metalearn.learners import ClassMean, Feedback, TaskSpec, make_learner
from metalearn.outer import ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.rollout.evaluation import evaluate, summary
from metalearn.rollout.inner_loop import run_episode
from metalearn.training.config import MetaTrainConfig
from metalearn.training.loop import MetaTraining
from tasks import DATASETS, FAMILIES, Pool, TaskSplit, describe_tasks, load_task
from tasks.datasets import SHARED_DATA

# Compiles dominate this file's time: each spec is sampled at one length, shared by the tests that use it.
ORDERED = "ordered:digits:per_class=5,queries=20,permute=false"  # 50 training steps, 20 queries, labels as stored
MNIST_ORDERED = "ordered:mnist:resize=7,per_class=5,permute=false"  # 50 training steps, 100 queries


def needs_mnist():
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"MNIST files not in {SHARED_DATA / 'mnist'}")


def rows(x) -> dict[bytes, int]:
    """Row bytes -> row index: an episode's inputs are exact copies of pool rows."""
    return {r.tobytes(): i for i, r in enumerate(np.asarray(x))}


def pool_indices(pool: Pool, x) -> np.ndarray:
    """Index into `pool` of every row of `x` (KeyError if one is not a pool row)."""
    lookup = rows(pool.x)
    return np.array([lookup[r.tobytes()] for r in np.asarray(x)])


@functools.partial(jax.jit, static_argnums=2)
def sample(task, key, length):
    """One episode; the task is a jit argument (as in meta-training), so its pools are not baked constants."""
    return task.sample(key, length)


@functools.partial(jax.jit, static_argnums=2)
def sample_batch(task, keys, length):
    return jax.vmap(lambda k: task.sample(k, length))(keys)


def keys_for(count, seed=0):
    return jax.random.split(jax.random.key(seed), count)


def sample_many(task, count, length):
    """`count` episodes from consecutive keys, as numpy arrays; one at a time (a vmapped sampler takes
    about twice as long to compile: it is compiled only in test_sample_is_pure_jittable_and_vmappable)."""
    episodes = [sample(task, key, length) for key in keys_for(count)]
    return tuple(np.stack([np.asarray(getattr(ep, f)) for ep in episodes]) for f in ("x", "y", "feedback_mask"))


# --- ordered streams -------------------------------------------------------------------------------------

def test_ordered_sorted_stream_layout():
    split = load_task(ORDERED)
    task = split.test
    assert task.episode_length(13) == task.episode_length(500) == split.train.episode_length(0) == 70
    ep = sample(task, jax.random.key(0), 0)  # the requested length is ignored
    assert ep.x.shape == (70, 64) and ep.y.shape == ep.feedback_mask.shape == (70,)
    np.testing.assert_array_equal(ep.y[:50], np.repeat(np.arange(10), 5))  # sorted, each class 5 times
    np.testing.assert_array_equal(ep.feedback_mask, np.arange(70) < 50)  # queries get no feedback
    np.testing.assert_array_equal(task.pool.y[pool_indices(task.pool, ep.x[:50])], ep.y[:50])
    np.testing.assert_array_equal(task.query_pool.y[pool_indices(task.query_pool, ep.x[50:])], ep.y[50:])


def test_a_stream_draws_its_phases_from_disjoint_halves_of_its_own_split():
    """No meta-test stream image was seen in meta-training, nor is a query image one of the training phase's."""
    split, plain = load_task(ORDERED), load_task("digits")
    for stream, pool in ((split.train, plain.train.pool), (split.test, plain.test.pool),
                         (split.validation, plain.validation.pool)):
        phase, queries = pool_indices(pool, stream.pool.x), pool_indices(pool, stream.query_pool.x)
        assert not set(phase) & set(queries) and len(phase) + len(queries) == pool.x.shape[0]
        assert set(np.unique(stream.pool.y)) == set(np.unique(stream.query_pool.y)) == set(range(10))
    meta_train_rows = rows(np.concatenate([plain.train.pool.x, plain.validation.pool.x]))
    assert not any(r.tobytes() in meta_train_rows for r in np.asarray(plain.test.pool.x))


def test_validation_slice_is_a_tenth_of_each_class_of_the_train_split_and_never_in_training():
    split = load_task("digits")
    train, validation = np.asarray(split.train.pool.y), np.asarray(split.validation.pool.y)
    train_rows = rows(split.train.pool.x)
    assert not any(r.tobytes() in train_rows for r in np.asarray(split.validation.pool.x))
    for c in range(10):
        total = (train == c).sum() + (validation == c).sum()
        assert (validation == c).sum() == round(0.1 * total)
    assert load_task("digits").validation.pool.x.shape == split.validation.pool.x.shape  # fixed between calls


def test_a_split_too_small_for_a_validation_slice_says_so():
    with pytest.raises(ValueError, match="too few to hold out 10% of each class"):
        load_task("digits:examples=12")


def test_ordered_streams_permute_labels_per_episode_by_default():
    task = load_task(ORDERED.replace(",permute=false", "")).test
    x, y, _ = sample_many(task, 6, 0)
    maps = set()
    for ex, ey in zip(x, y):
        original = np.concatenate([np.asarray(task.pool.y)[pool_indices(task.pool, ex[:50])],
                                   np.asarray(task.query_pool.y)[pool_indices(task.query_pool, ex[50:])]])
        mapping = {}
        for o, e in zip(original, ey):
            assert mapping.setdefault(int(o), int(e)) == int(e)  # one map for both phases of an episode
        assert sorted(mapping[c] for c in range(10)) == list(range(10))
        maps.add(tuple(mapping[c] for c in range(10)))
    assert len(maps) == 6


def test_ordered_random_order_is_a_class_permutation():
    task = load_task(ORDERED + ",order=random").train
    _, y, mask = sample_many(task, 8, 0)
    orders = set()
    for episode in y:
        blocks = episode[:50].reshape(10, 5)
        assert (blocks == blocks[:, :1]).all()  # each contiguous block is one class
        assert sorted(blocks[:, 0]) == list(range(10))  # every class once
        orders.add(tuple(blocks[:, 0]))
    assert len(orders) == 8 and mask[:, :50].all() and not mask[:, 50:].any()


@pytest.mark.parametrize("order", ["sorted", "random"])
def test_ordered_groups_interleave_two_classes_per_block(order):
    task = load_task(f"{ORDERED},group=2,order={order}").train
    _, y, mask = sample_many(task, 8, 0)
    assert y.shape == (8, 70) and mask[:, :50].all() and not mask[:, 50:].any()
    interleaved = False
    seen = set()
    for episode in y:
        blocks = episode[:50].reshape(5, 10)  # 2 classes x 5 examples each
        for block in blocks:
            classes, counts = np.unique(block, return_counts=True)
            assert len(classes) == 2 and (counts == 5).all()
            interleaved |= not (np.diff(block) >= 0).all() and not (np.diff(block) <= 0).all()
        seen.add(tuple(tuple(sorted(set(b))) for b in blocks))
        if order == "sorted":
            assert [sorted(set(b)) for b in blocks] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
        else:
            assert sorted(blocks.ravel()) == sorted(np.repeat(np.arange(10), 5))
    assert interleaved  # not one class after the other within a block
    assert len(seen) == (1 if order == "sorted" else 8)


def test_ordered_mnist_meta_test_stream_is_all_test_split():
    needs_mnist()
    split = load_task(MNIST_ORDERED)
    train, test = split.train, split.test
    assert train.input_size == 49 and test.episode_length(7) == 5 * 10 + 100
    assert train.pool.x.shape[0] + train.query_pool.x.shape[0] + split.validation.pool.x.shape[0] \
        + split.validation.query_pool.x.shape[0] == 60_000
    assert test.pool.x.shape[0] + test.query_pool.x.shape[0] == 10_000
    ep = sample(test, jax.random.key(1), 0)
    assert ep.x.shape == (150, 49)
    np.testing.assert_array_equal(ep.y[:50], np.repeat(np.arange(10), 5))
    np.testing.assert_array_equal(ep.feedback_mask, np.arange(150) < 50)
    q = pool_indices(test.query_pool, ep.x[50:])  # the queries are test-pool rows...
    np.testing.assert_array_equal(test.query_pool.y[q], ep.y[50:])
    t = pool_indices(test.pool, ep.x[:50])  # the training phase is test-split rows too
    np.testing.assert_array_equal(test.pool.y[t], ep.y[:50])
    train_rows = rows(np.concatenate([train.pool.x, train.query_pool.x]))
    assert not any(r.tobytes() in train_rows for r in np.asarray(ep.x))  # ... and none is a meta-training row


def class_mean_query_losses(ep, num_classes):
    """Cross-entropy of nearest class mean on the queries, given the training phase only (numpy)."""
    x, y, mask = (np.asarray(a, np.float64) for a in (ep.x, ep.y, ep.feedback_mask))
    y, mask = y.astype(int), mask.astype(bool)
    means = np.stack([x[mask][y[mask] == c].mean(0) for c in range(num_classes)])
    logits = -((means[None] - x[~mask][:, None]) ** 2).sum(-1)
    top = logits.max(-1)
    return top + np.log(np.exp(logits - top[:, None]).sum(-1)) - logits[np.arange(len(logits)), y[~mask]]


@pytest.mark.parametrize("spec", [ORDERED, MNIST_ORDERED])
def test_query_phase_gives_the_learner_no_feedback(spec):
    if "mnist" in spec:
        needs_mnist()
    task = load_task(spec).test
    ep = sample(task, jax.random.key(2), 0)
    train_steps = int(ep.feedback_mask.sum())
    run = jax.jit(lambda ep: run_episode(ClassMean(), {}, jax.random.key(0), ep, task.num_classes))
    result = run(ep)
    # Query predictions are those of a learner that saw exactly the training phase, every step of it.
    expected = class_mean_query_losses(ep, task.num_classes)
    np.testing.assert_allclose(result.loss[train_steps:], expected, rtol=1e-4, atol=1e-3)
    # Control: with feedback on the queries too, the learner keeps learning and the losses change.
    leaky = run(ep.replace(feedback_mask=jnp.ones_like(ep.feedback_mask)))
    np.testing.assert_allclose(leaky.loss[: train_steps + 1], result.loss[: train_steps + 1], rtol=1e-5)
    assert not np.allclose(leaky.loss[train_steps:], expected, rtol=1e-4, atol=1e-3)


def test_class_counts_do_not_move_in_the_query_phase():
    """The inner loop's step by step: feedback only where the mask says, one step late."""
    task, learner = load_task(ORDERED).test, ClassMean()
    ep = sample(task, jax.random.key(2), 0)

    @jax.jit
    def step(state, feedback, x, y, given):
        state, logits = learner.step({}, state, x, feedback)
        return state, Feedback.from_prediction(logits, y, given)

    state = learner.init_state({}, jax.random.key(0), TaskSpec(task.input_size, task.num_classes))
    feedback, counts = Feedback.zeros(task.num_classes), []
    for x, y, given in zip(ep.x, ep.y, ep.feedback_mask):
        state, feedback = step(state, feedback, x, y, given)
        counts.append(np.asarray(state["counts"]))
    counts = np.stack(counts)
    np.testing.assert_array_equal(counts[50], np.full(10, 5))  # the last training label arrives at query 1
    assert (counts[50:] == counts[50]).all()


def test_evaluate_reports_query_accuracy_only_for_streams_with_a_query_phase():
    run = jax.jit(lambda task: evaluate(ClassMean(), {}, task, jax.random.key(3), 4, 20))
    ordered = run(load_task(ORDERED).test)
    assert ordered.acc_curve.shape == (70,)
    assert np.isfinite(ordered.query_acc) and 0.5 < float(ordered.query_acc) <= 1.0
    plain = run(load_task("digits").test)
    assert np.isnan(plain.query_acc) and summary(plain)["query_acc"] is None


@pytest.mark.parametrize("spec, task_name, episodes, chunk, batch", [
    ("sgd:lr=0.1", "digits", 16, 1, 1), ("sgd:lr=0.1", "digits", 5, 2, 1), ("sgd:lr=0.1", "digits", 3, 0, 1),
    ("vsml:lstm_size=4,msg_size=2", ORDERED, 6, 2, 2)])
def test_evaluation_split_over_devices_scores_the_same_episodes(spec, task_name, episodes, chunk, batch):
    """With a mesh every device samples and runs its share of the episodes, `chunk` at a time, padded by
    repeats when they do not divide over the 8 devices: the same curves as one vmap on one device (also with
    meta-parameters, inner batches and a stream's query phase)."""
    learner, task, key = make_learner(spec), load_task(task_name).test, jax.random.key(5)
    params = learner.init_meta_params(jax.random.key(1), TaskSpec(task.input_size, task.num_classes, 20))
    one = jax.jit(lambda p, t: evaluate(learner, p, t, key, episodes, 20, batch))(params, task)
    split = jax.jit(lambda p, t: evaluate(learner, p, t, key, episodes, 20, batch, make_mesh(8), chunk))(params, task)
    np.testing.assert_allclose(split.loss_curve, one.loss_curve, rtol=1e-5)
    np.testing.assert_allclose(split.acc_curve, one.acc_curve, atol=1e-6)
    assert float(split.acc_ci) == pytest.approx(float(one.acc_ci), abs=1e-6)
    np.testing.assert_equal(float(split.query_acc), float(one.query_acc))  # NaN for both without queries


# --- dataset episodes ------------------------------------------------------------------------------------

def label_maps(task, count=10, length=200):
    """Per episode, the map original label -> episode label, read off through the pool."""
    x, y, _ = sample_many(task, count, length)
    maps = []
    for ex, ey in zip(x, y):
        original = np.asarray(task.pool.y)[pool_indices(task.pool, ex)]
        mapping = {}
        for o, e in zip(original, ey):
            assert mapping.setdefault(int(o), int(e)) == int(e)  # one class, one label within an episode
        maps.append(tuple(sorted(mapping.items())))
    return maps


def test_label_permutation_changes_between_episodes():
    maps = label_maps(load_task("digits").train)
    assert len(set(maps)) == 10


def test_fixed_permutations():
    maps = label_maps(load_task("digits:permutations=3").train, count=30)
    assert 2 <= len(set(maps)) <= 3
    for mapping in maps:
        assert sorted(v for _, v in mapping) == list(range(10))  # a permutation


def test_no_permutation_keeps_labels():
    assert set(label_maps(load_task("digits:permute=false").train, count=5)) == {tuple((c, c) for c in range(10))}


def test_class_subsets():
    split = load_task("digits:classes=5")
    assert split.train.num_classes == split.test.num_classes == 5
    task = split.train
    x, y, _ = sample_many(task, 10, 200)
    assert y.min() >= 0 and y.max() <= 4
    chosen = set()
    for ex, ey in zip(x, y):
        original = np.asarray(task.pool.y)[pool_indices(task.pool, ex)]
        assert len(set(original)) == 5 and len(set(ey)) == 5
        assert len(set(zip(original, ey))) == 5  # a bijection between the 5 classes and labels 0..4
        chosen.add(frozenset(original))
    assert len(chosen) > 1  # other classes in other episodes


def one_example_pool(task):
    """The same task with every pool row one example, so an episode's x is that example's projection."""
    pool = task.pool
    return task.replace(pool=Pool(x=jnp.broadcast_to(pool.x[:1], pool.x.shape), y=jnp.zeros_like(pool.y)))


def test_projection_per_episode():
    task = load_task("digits:project=16").train
    assert task.input_size == 16
    x, _, _ = sample_many(one_example_pool(task), 30, 5)
    assert x.shape == (30, 5, 16)
    assert np.allclose(x, x[:, :1])  # one projection within an episode
    assert len({r.round(4).tobytes() for r in x[:, 0]}) == 30  # a new one every episode


def test_fixed_projections():
    task = load_task("digits:project=16,projections=2").train
    assert task.input_size == 16
    x, _, _ = sample_many(one_example_pool(task), 30, 5)
    assert np.allclose(x, x[:, :1])
    assert len({r.round(4).tobytes() for r in x[:, 0]}) == 2  # the same example has only two projections


def test_jitter_is_a_fresh_per_unit_gain_and_offset_per_episode():
    plain, jittered = load_task("digits").train, load_task("digits:jitter=0.5").train
    assert jittered.input_size == plain.input_size
    x, y, _ = sample_many(jittered, 400, 5)
    x0, y0, _ = sample_many(plain, 400, 5)
    assert np.array_equal(y, y0)  # the same examples and labels: only the inputs change
    # within an episode one affine map per unit: x = x0 * g + o, solved from two distinct examples
    spread = x0[:, 1] - x0[:, 0]
    gain = (x[:, 1] - x[:, 0]) / np.where(abs(spread) > 0.1, spread, np.nan)  # NaN: not solvable here
    offset = x[:, 0] - x0[:, 0] * gain
    known = np.broadcast_to(np.isfinite(gain)[:, None], x[:, 2:].shape)
    assert known.mean() > 0.5
    assert np.allclose((x0[:, 2:] * gain[:, None] + offset[:, None])[known], x[:, 2:][known], atol=1e-3)
    assert abs(np.nanstd(np.log(gain)) - 0.5) < 0.05 and abs(np.nanstd(offset) - 0.5) < 0.05
    solvable = np.isfinite(gain).sum(0) >= 20  # units that vary in digits (some pixels are constant)
    assert solvable.sum() > 40 and np.nanstd(gain[:, solvable], axis=0).min() > 0.2  # new gains every episode


def test_negative_jitter_is_refused():
    with pytest.raises(ValueError, match="jitter"):
        load_task("digits:jitter=-1")


def test_num_classes_pads_and_crops():
    padded = load_task("digits:num_classes=12")
    assert padded.train.num_classes == padded.test.num_classes == 12
    _, y, _ = sample_many(padded.train, 20, 100)
    assert y.max() <= 11 and len(np.unique(y)) > 10  # permutations of 12 labels reach 10 and 11
    cropped = load_task("digits:num_classes=5")
    assert cropped.train.num_classes == cropped.test.num_classes == 5
    plain = load_task("digits")
    for task, full in zip(cropped, plain):  # exactly the examples of the first five classes
        np.testing.assert_array_equal(task.pool.y, full.pool.y[full.pool.y < 5])
        np.testing.assert_array_equal(task.pool.x, full.pool.x[full.pool.y < 5])


def test_dim_pads_with_trailing_zeros():
    plain, padded = load_task("digits").train, load_task("digits:dim=100").train
    assert padded.input_size == 100
    np.testing.assert_array_equal(padded.pool.x[:, :64], plain.pool.x)
    assert not np.asarray(padded.pool.x[:, 64:]).any()
    ep = sample(padded, jax.random.key(0), 50)
    assert ep.x.shape == (50, 100) and not np.asarray(ep.x[:, 64:]).any()


def test_examples_keeps_a_mixed_subset_of_each_split():
    split = load_task("digits:examples=50")
    assert split.train.pool.x.shape[0] + split.validation.pool.x.shape[0] == split.test.pool.x.shape[0] == 50
    for task in split:
        assert len(np.unique(task.pool.y)) >= 5  # not the first class only (the digits pools are class-sorted)
    plain = load_task("digits")
    whole_train = Pool(x=jnp.concatenate([plain.train.pool.x, plain.validation.pool.x]), y=plain.train.pool.y)
    pool_indices(whole_train, split.train.pool.x)  # a subset of the split it came from
    pool_indices(plain.test.pool, split.test.pool.x)


def test_classes_with_empty_classes_is_an_error():
    with pytest.raises(ValueError, match=r"classes \[10, 11\] have no examples"):
        load_task("digits:num_classes=12,classes=3")


# --- memorization and sums -------------------------------------------------------------------------------

def test_memorize_few_items_each_with_one_label():
    task = load_task("memorize:digits:items=4").train
    x, y, mask = sample_many(task, 500, 60)  # enough episodes that a repeated item would show up
    assert mask.all()
    lookup = rows(task.pool.x)
    for ex, ey in zip(x, y):
        items = {}
        for r, label in zip(ex, ey):
            assert items.setdefault(lookup[r.tobytes()], int(label)) == int(label)
        assert len(items) == 4
    assert y.min() >= 0 and y.max() < task.num_classes == 10


def test_sum_labels():
    task = load_task("sum:dim=8").train
    assert task.input_size == 8 and task.num_classes == 2
    x, y, mask = sample_many(task, 3, 300)
    np.testing.assert_array_equal(y, (x.sum(-1) >= 0).astype(np.int32))
    assert 0.3 < y.mean() < 0.7 and mask.all()


# --- every family ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, length", [  # lengths as sampled above, to share the compiled samplers
    ("digits", 200), ("digits:project=16", 5), ("memorize:digits:items=4", 60), ("sum:dim=8", 300),
    (ORDERED + ",order=random", 0)])
def test_sample_is_pure_jittable_and_vmappable(spec, length):
    task, count = load_task(spec).train, 4
    keys = keys_for(count)
    batch = sample_batch(task, keys, length)
    again = sample_batch(load_task(spec).train, keys, length)  # the key decides everything
    for a, b in zip(jax.tree.leaves(batch), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    steps = task.episode_length(length)
    assert batch.x.shape == (count, steps, task.input_size) and batch.x.dtype == jnp.float32
    assert batch.y.dtype == jnp.int32 and batch.feedback_mask.dtype == jnp.bool_
    assert 0 <= int(batch.y.min()) and int(batch.y.max()) < task.num_classes
    for i in range(3):  # vmapped == one at a time
        single = sample(task, keys[i], length)
        np.testing.assert_allclose(batch.x[i], single.x, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(batch.y[i], single.y)
        np.testing.assert_array_equal(batch.feedback_mask[i], single.feedback_mask)
    assert not np.array_equal(batch.x[0], batch.x[1])  # different keys, different episodes


# --- registry --------------------------------------------------------------------------------------------

def test_unknown_task_lists_datasets_and_families():
    with pytest.raises(ValueError, match="datasets: digits, mnist, fashion_mnist.*families: episodes, memorize"):
        load_task("mnsit")
    with pytest.raises(ValueError, match="unknown task"):
        load_task("ordered:mnsit:per_class=3")


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown option\(s\) itmes; valid options.*items=10"):
        load_task("memorize:digits:itmes=3")
    with pytest.raises(ValueError, match=r"unknown option\(s\) items;.*per_class=20.*queries=100"):
        load_task("ordered:digits:items=3")
    with pytest.raises(ValueError, match="expected int"):
        load_task("digits:classes=many")


def test_option_not_key_value():
    with pytest.raises(ValueError, match="'foo' .* is not of the form key=value"):
        load_task("digits:classes=3,foo")


def test_sum_takes_no_dataset():
    with pytest.raises(ValueError, match="sum takes no dataset"):
        load_task("sum:mnist")


def test_bad_ordered_options():
    with pytest.raises(ValueError, match="order must be 'sorted' or 'random'"):
        load_task("ordered:digits:order=backwards")
    with pytest.raises(ValueError, match=r"classes \[10, 11\] have none"):
        load_task("ordered:digits:num_classes=12")


def test_user_task(tmp_path, monkeypatch):
    (tmp_path / "my_tasks_for_test.py").write_text(textwrap.dedent("""
        from tasks import SumEpisodes, TaskSplit

        def split(dim="4"):
            return TaskSplit(SumEpisodes(dim=int(dim), name="train"), SumEpisodes(dim=int(dim), name="test"))

        def single():
            return SumEpisodes(dim=3, name="single")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    pair = load_task("my_tasks_for_test:split:dim=6")
    assert isinstance(pair, TaskSplit)
    assert (pair.train.name, pair.test.name, pair.train.input_size) == ("train", "test", 6)
    one = load_task("my_tasks_for_test:single")
    assert one.train is one.test and one.train.input_size == 3
    with pytest.raises(ValueError, match="cannot load user task no_such_module_xyz:make"):
        load_task("no_such_module_xyz:make")
    with pytest.raises(ValueError, match="cannot load user task my_tasks_for_test:missing"):
        load_task("my_tasks_for_test:missing")
    sys.modules.pop("my_tasks_for_test", None)


def test_describe_tasks_mentions_every_family_and_dataset():
    text = describe_tasks()
    for name in (*FAMILIES, *DATASETS):
        assert name in text
    for option in ("per_class", "queries", "order", "group", "items", "permutations", "projections", "dim"):
        assert option in text


# --- meta-training over several tasks --------------------------------------------------------------------

TINY = MetaTrainConfig(outer=ESConfig(population=16, chunk=2), episode_length=20, eval_episodes=4,
                       learner="vsml:lstm_size=4,msg_size=2,ticks=1")


def test_meta_training_on_two_tasks_compiles_once(devices):
    config = TINY.replace(train_tasks=("digits", "digits:permutations=2"), test_tasks=("digits",))
    training = MetaTraining(config, make_mesh(8))
    state = training.init()
    for _ in range(3):
        state, metrics = training.generation_step(state, training.train_tasks)
    assert training.generation_step._cache_size() == 1
    assert int(state.generation) == 3 and np.isfinite(np.asarray(metrics.fitness)).all()


def test_meta_training_tasks_must_share_a_shape(devices):
    config = TINY.replace(train_tasks=("digits", "digits:dim=100"), test_tasks=("digits",))
    with pytest.raises(ValueError, match="must share one shape.*dim= and num_classes="):
        MetaTraining(config, make_mesh(8))
