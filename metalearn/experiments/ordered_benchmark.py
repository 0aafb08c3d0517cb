"""The OrderedMNIST benchmark: one learner on the full class-sorted stream, measured on four axes.

A learner sees every training pair once (predict, then get the label's feedback), then predicts every test
image with no feedback; its score is the query accuracy. The training phase and the query phase are each
one compiled `lax.scan`; the same compiled phases give the compute axis (XLA's cost analysis counts a loop
body once, so FLOPs per step x steps). Training-phase predictions are never scored: when a learner's update
does not read the prediction error (nearest neighbours, class means, LDA), its feedback carries the label
only, and XLA then drops the unused predictions, so kNN does not search its memory 60,000 times for nothing.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from metalearn.learners import Feedback, Learner, TaskSpec, check_task_fits, make_learner
from metalearn.learners.base import PyTree, compiled_flops, library_flops, tree_size
from metalearn.learners.lstm import builtin_tanh
from metalearn.training.run import load_run
from tasks.full_stream import StreamData, stream_order

HAND_DESIGNED = "nothing (hand-designed)"


class Entry(NamedTuple):
    """One leaderboard entry: a learner, its algorithm (meta-parameters) and what meta-training showed it."""

    label: str
    learner: Learner
    meta_params: PyTree
    meta_trained_on: str


class Phases(NamedTuple):
    """The compiled phases of one entry on one stream shape, and their FLOPs per step."""

    train: Callable  # (meta, state, xs, ys) -> (state, feedback)
    query: Callable  # (meta, state, feedback, xs) -> predicted labels
    train_flops: float  # per step: XLA's cost analysis plus the library calls'
    query_flops: float
    uncounted: list[str]  # library calls whose FLOPs are not known (not in LIBRARY_FLOPS)
    compile_seconds: float


def hand_designed_entry(spec: str) -> Entry:
    """A registered learner by spec; kNN without a capacity stores the whole stream (full memory: its
    default capacity is the episode length, here the training phase, see `stream_spec`)."""
    return Entry(spec, make_learner(spec), {}, HAND_DESIGNED)


def stream_spec(data: StreamData) -> TaskSpec:
    """The learners' task spec; its episode length is the training phase, the examples a state can absorb."""
    return TaskSpec(data.input_size, data.num_classes, len(data.train_y))


def run_entry(path: str, data: StreamData) -> Entry:
    """A meta-trained learner from a run directory, checked to fit the stream's input and class counts."""
    run = load_run(path)
    try:
        check_task_fits(run.learner, run.meta_params, data)
    except ValueError:
        made_for = run.info.get("task_spec", {})
        raise ValueError(f"--run {path}: its {run.learner.name} meta-parameters were made for "
                         f"{made_for.get('input_size', '?')} inputs and {made_for.get('num_classes', '?')} classes, "
                         f"not the {data.input_size} inputs and {data.num_classes} classes of {data.name}; "
                         f"pick the --resize it was meta-trained with.") from None
    seen = ", ".join(run.config.train_tasks)
    dataset = data.name.split()[0]
    if any(dataset in task.replace("-", "_").split(":") for task in run.config.train_tasks):
        seen += f" (includes {dataset}'s train split: these training images)"
    return Entry(f"{run.learner.name} ({path}, generation {run.step})", run.learner,
                 jax.tree.map(jnp.asarray, run.meta_params), seen)


def uses_error(learner: Learner, meta_params: PyTree, spec: TaskSpec) -> bool:
    """Whether the learner's state update reads feedback.error (the prediction), found from its jaxpr."""
    state = learner.init_state(meta_params, jax.random.key(0), spec)
    label = jnp.zeros(spec.num_classes)
    update = lambda error: learner.step(meta_params, state, jnp.zeros(spec.input_size), Feedback(error, label))[0]
    closed = jax.make_jaxpr(update)(jnp.zeros(spec.num_classes))
    error_var = closed.jaxpr.invars[0]
    return any(error_var in eqn.invars for eqn in closed.jaxpr.eqns) or error_var in closed.jaxpr.outvars


def compile_phases(entry: Entry, data: StreamData) -> Phases:
    learner, meta, c = entry.learner, entry.meta_params, data.num_classes
    spec = stream_spec(data)
    with_error = uses_error(learner, meta, spec)

    def train(meta, state, xs, ys):
        def body(carry, example):
            state, feedback = carry
            state, logits = learner.step(meta, state, example[0], feedback)
            feedback = Feedback.from_prediction(logits, example[1], True)
            return (state, feedback if with_error else feedback._replace(error=jnp.zeros(c))), None

        return jax.lax.scan(body, (state, Feedback.zeros(c)), (xs, ys))[0]

    def query(meta, state, feedback, xs):
        def body(carry, x):
            state, feedback = carry
            state, logits = learner.step(meta, state, x, feedback)
            return (state, Feedback.zeros(c)), jnp.argmax(logits)

        return jax.lax.scan(body, (state, feedback), xs)[1]

    start = time.perf_counter()
    state = jax.eval_shape(lambda k: learner.init_state(meta, k, spec), jax.random.key(0))
    with builtin_tanh():  # counted (and run) with XLA's tanh op: the FLOP convention of `step_flops`
        compiled_train = jax.jit(train).lower(meta, state, data.train_x, data.train_y).compile()
        compiled_query = jax.jit(query).lower(meta, state, Feedback.zeros(c), data.query_x).compile()
    uncounted = sorted({call for c in (compiled_train, compiled_query) for call in library_flops(c)[1]})
    return Phases(compiled_train, compiled_query, compiled_flops(compiled_train), compiled_flops(compiled_query),
                  uncounted, time.perf_counter() - start)


def run_seed(entry: Entry, phases: Phases, data: StreamData, key: chex.PRNGKey,
             order: str) -> tuple[np.ndarray, float]:
    """Query predictions of one seed (its within-class order and initial state) and the wall time."""
    k_order, k_state = jax.random.split(key)
    idx = stream_order(k_order, data.train_y, data.num_classes, order)
    xs, ys = data.train_x[idx], data.train_y[idx]
    state = entry.learner.init_state(entry.meta_params, k_state, stream_spec(data))
    jax.block_until_ready((xs, ys, state))
    start = time.perf_counter()
    state, feedback = phases.train(entry.meta_params, state, xs, ys)
    predicted = np.asarray(phases.query(entry.meta_params, state, feedback, data.query_x))
    return predicted, time.perf_counter() - start


def evaluate(entry: Entry, data: StreamData, seeds: int, order: str = "sorted") -> dict:
    """One results row: score (query accuracy, test split) over seeds, the four axes and wall time."""
    phases = compile_phases(entry, data)
    spec = stream_spec(data)
    query_y = np.asarray(data.query_y)
    scores, per_class, seconds = [], [], []
    for seed in range(seeds):
        predicted, wall = run_seed(entry, phases, data, jax.random.key(seed), order)
        correct = predicted == query_y
        scores.append(float(correct.mean()))
        per_class.append([float(correct[query_y == c].mean()) for c in range(data.num_classes)])
        seconds.append(wall)
    state = jax.eval_shape(lambda k: entry.learner.init_state(entry.meta_params, k, spec), jax.random.key(0))
    train_steps, queries = len(data.train_y), len(query_y)
    return {
        "learner": entry.label, "score": float(np.mean(scores)), "score_min": min(scores), "score_max": max(scores),
        "score_seeds": scores, "state_size": tree_size(state), "algorithm_size": tree_size(entry.meta_params),
        "flops_total": phases.train_flops * train_steps + phases.query_flops * queries,
        "flops_per_train_step": phases.train_flops, "flops_per_query": phases.query_flops,
        "flops_uncounted_calls": phases.uncounted,
        "train_steps": train_steps, "queries": queries, "seconds": float(np.mean(seconds)),
        "compile_seconds": phases.compile_seconds, "meta_trained_on": entry.meta_trained_on,
        "per_class": np.mean(per_class, axis=0).tolist(),
    }
