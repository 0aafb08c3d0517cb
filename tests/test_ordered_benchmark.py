"""The OrderedMNIST benchmark: stream construction, streaming LDA, kNN's reservoir, the CLI end to end."""

import json
import re
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from launch import ordered_mnist
from metalearn.outer.es import ESConfig
from metalearn.outer.mesh import make_mesh
from metalearn.training.config import MetaTrainConfig
from metalearn.learners import Feedback, TaskSpec, make_learner
from metalearn.training.loop import MetaTraining, meta_train
from metalearn.experiments.ordered_benchmark import compile_phases, hand_designed_entry, uses_error
from tasks.full_stream import StreamData, stream_order


def labels_of(counts):
    return jnp.asarray(np.repeat(np.arange(len(counts)), counts)[np.random.default_rng(0).permutation(sum(counts))])


def test_sorted_stream_has_every_example_once_grouped_in_class_order():
    y = labels_of([5, 3, 7, 4])
    idx = np.asarray(stream_order(jax.random.key(0), y, 4))
    assert sorted(idx) == list(range(len(y)))
    assert np.asarray(y)[idx].tolist() == [0] * 5 + [1] * 3 + [2] * 7 + [3] * 4


def test_seeds_shuffle_within_classes_and_random_order_permutes_whole_classes():
    y = labels_of([30, 30, 30, 30, 30])
    a, b = (np.asarray(stream_order(jax.random.key(s), y, 5)) for s in (0, 1))
    assert not np.array_equal(a, b) and np.array_equal(np.asarray(y)[a], np.asarray(y)[b])
    assert np.array_equal(a, np.asarray(stream_order(jax.random.key(0), y, 5)))
    orders = set()
    for seed in range(6):
        streamed = np.asarray(y)[np.asarray(stream_order(jax.random.key(seed), y, 5, "random"))]
        blocks = streamed.reshape(5, 30)
        assert (blocks == blocks[:, :1]).all()  # each class in one contiguous block
        orders.add(tuple(blocks[:, 0]))
    assert len(orders) > 1


def run_learner(learner, xs, ys, spec):
    state = learner.init_state({}, jax.random.key(0), spec)
    step = jax.jit(learner.step)
    feedback = Feedback.zeros(spec.num_classes)
    for x, y in zip(xs, ys):
        state, logits = step({}, state, x, feedback)
        feedback = Feedback.from_prediction(logits, y, True)
    return step({}, state, jnp.zeros(spec.input_size), feedback)[0]


def test_streaming_lda_equals_batch_lda_in_any_order():
    rng = np.random.default_rng(1)
    spec = TaskSpec(input_size=4, num_classes=3)
    ys = np.repeat(np.arange(3), 20)
    xs = (rng.normal(size=(60, 4)) + 2.0 * rng.normal(size=(3, 4))[ys]).astype(np.float32)
    lda = make_learner("slda:shrinkage=0.1")
    state = run_learner(lda, xs, ys, spec)
    means = np.stack([xs[ys == c].mean(0) for c in range(3)])
    centered = xs - means[ys]
    cov = centered.T @ centered / len(xs) + 0.1 * np.eye(4)
    np.testing.assert_allclose(state["means"], means, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state["scatter"] / len(xs) + 0.1 * np.eye(4), cov, rtol=1e-4, atol=1e-5)
    queries = rng.normal(size=(10, 4)).astype(np.float32)
    w = np.linalg.solve(cov, means.T)  # [D, C]
    batch_logits = queries @ w - 0.5 * np.sum(means.T * w, axis=0)
    np.testing.assert_allclose(jax.vmap(lambda q: lda.predict(state, q))(queries), batch_logits, rtol=1e-3,
                               atol=1e-3)
    shuffled = rng.permutation(60)
    other = run_learner(lda, xs[shuffled], ys[shuffled], spec)
    for name in ("means", "counts", "scatter"):
        np.testing.assert_allclose(other[name], state[name], rtol=1e-4, atol=1e-4)


def test_knn_reservoir_keeps_every_class_of_a_sorted_stream():
    spec = TaskSpec(input_size=2, num_classes=10)
    ys = np.repeat(np.arange(10), 30)
    xs = np.stack([ys, np.arange(300)], axis=1).astype(np.float32)
    state = run_learner(make_learner("knn:capacity=40"), xs, ys, spec)
    assert int(state["count"]) == 300
    kept = np.bincount(np.asarray(state["labels"]), minlength=10)
    assert (kept > 0).all() and kept.max() < 15  # overwriting the oldest would keep classes 8 and 9 only
    np.testing.assert_array_equal(np.asarray(state["xs"])[:, 0], np.asarray(state["labels"]))  # pairs intact


def test_label_only_learners_skip_training_predictions():
    spec = TaskSpec(input_size=49, num_classes=10)
    assert not uses_error(make_learner("knn"), {}, spec) and not uses_error(make_learner("slda"), {}, spec)
    assert uses_error(make_learner("sgd"), {}, spec)
    xs, ys = jnp.zeros((500, 49)), jnp.arange(500) % 10
    data = StreamData(xs, ys, xs[:50], ys[:50], 10, "zeros")
    phases = compile_phases(hand_designed_entry("knn"), data)
    assert phases.train_flops < phases.query_flops / 20  # a query searches 500 stored examples; training does not


def test_flops_per_step_do_not_depend_on_the_stream_length():
    """flops_total = cost x steps relies on XLA counting a loop body once."""
    per_step = []
    for n in (100, 400):
        xs, ys = jnp.ones((n, 9)), jnp.arange(n) % 3
        phases = compile_phases(hand_designed_entry("sgd"), StreamData(xs, ys, xs, ys, 3, "ones"))
        per_step.append((phases.train_flops, phases.query_flops))
    assert per_step[0] == per_step[1] and 0 < per_step[0][0] < 1e4


def test_library_calls_of_lda_count_in_its_flops():
    """XLA's cost analysis sees nothing inside LAPACK calls; the Cholesky of each LDA query must be counted."""
    d = 40
    xs, ys = jnp.ones((60, d)), jnp.arange(60) % 3
    phases = compile_phases(hand_designed_entry("slda"), StreamData(xs, ys, xs, ys, 3, "ones"))
    assert phases.query_flops > d ** 3 / 3 > phases.train_flops and phases.uncounted == []


def write_idx(path, array):
    dims = array.shape
    path.write_bytes(struct.pack(">I", 0x800 + len(dims)) + struct.pack(f">{len(dims)}I", *dims) + array.tobytes())


@pytest.fixture(scope="module")
def fake_kmnist(tmp_path_factory):
    """A kmnist folder of random images whose train split lacks class 3."""
    root = tmp_path_factory.mktemp("data")
    folder = root / "kmnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 200), ("t10k", 50)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        if split == "train":
            labels[labels == 3] = 4
        write_idx(folder / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)).astype(np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture(scope="module")
def rnn_run(tmp_path_factory):
    """A tiny meta-RNN run on 7x7 MNIST: its meta-parameters fit 49 inputs only."""
    config = MetaTrainConfig(learner="meta_rnn:hidden=4", train_tasks=("mnist:resize=7",),
                             test_tasks=("mnist:resize=7",), outer=ESConfig(population=16, chunk=2), generations=2,
                             episode_length=20, eval_every=2, eval_episodes=4, checkpoint_every=2)
    path = tmp_path_factory.mktemp("runs") / "rnn7"
    meta_train(MetaTraining(config, make_mesh(8)), path, progress=False)
    return path


@pytest.mark.parametrize("args, message", [
    (["--dataset", "mnistt"], "unknown dataset 'mnistt'; known datasets: mnist, fashion_mnist, kmnist"),
    (["--learners", "knnn"], "unknown learner 'knnn'; known learners: .*slda"),
    (["--resize", "9"], "resize must divide 28"),
])
def test_cli_bad_input_says_what_exists(args, message, tmp_path, capsys):
    assert ordered_mnist.main([*args, "--subset", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err)


@pytest.mark.slow
def test_cli_names_the_class_a_train_split_lacks(fake_kmnist, tmp_path, capsys):
    assert ordered_mnist.main(["--dataset", "kmnist", "--data-dir", str(fake_kmnist), "--out", str(tmp_path)]) == 2
    assert "the train split of kmnist has no examples of class(es) [3]" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_run_that_does_not_fit_is_a_one_line_error(rnn_run, tmp_path, capsys):
    args = ["--resize", "14", "--subset", "2", "--learners", "--run", str(rnn_run), "--out", str(tmp_path)]
    assert ordered_mnist.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "made for 49 inputs and 10 classes, not the 196 inputs" in err


@pytest.mark.slow
def test_tiny_end_to_end_run_writes_every_output(rnn_run, tmp_path):
    args = ["--subset", "20", "--seeds", "2", "--learners", "class_mean", "slda", "knn", "knn:capacity=30",
            "--run", str(rnn_run), "--out", str(tmp_path)]
    assert ordered_mnist.main(args) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["benchmark"] is False and results["setup"]["subset"] == 20
    rows = {r["learner"]: r for r in results["rows"]}
    assert all(r["train_steps"] == 200 and r["queries"] == 200 and len(r["score_seeds"]) == 2 for r in rows.values())
    assert rows["knn"]["state_size"] > rows["knn:capacity=30"]["state_size"] > rows["class_mean"]["state_size"]
    assert rows["class_mean"]["score"] > 0.5 and rows["slda"]["score"] > 0.5  # chance is 0.1
    learned = rows[f"meta_rnn ({rnn_run}, generation 2)"]
    assert learned["algorithm_size"] > 0 and "includes mnist's train split" in learned["meta_trained_on"]
    assert all(r["flops_total"] > 0 for r in rows.values())
    for name in ("results.csv", "results.md", "accuracy_vs_state.png", "per_class.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "NOT the benchmark" in (tmp_path / "results.md").read_text()
