"""Task specifications -> (meta-train, meta-test) task pairs, and the listing of every task and option.

A spec is `[family:]dataset[:key=value,...]` or `sum[:...]` or `module:function[:...]`, e.g.
`mnist:resize=14,project=64`, `ordered:mnist:resize=14,per_class=20`, `memorize:digits:items=20`.
The meta-train task draws from the dataset's train split (for `digits`: the meta-train pool) less a fixed
validation slice (`tasks.splits.VALIDATION_FRACTION` of each class), the validation task from that slice,
the meta-test task from the test split, so no validation or meta-test example is ever seen in meta-training.
A stream draws its training phase and its queries from disjoint halves of its split.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
from typing import Callable, NamedTuple

import jax.numpy as jnp
import numpy as np

from tasks.spec import build, split_options
from tasks import preprocess
from tasks.datasets import CATALOGUE, load_dataset
from tasks.digits import load_digits_pools
from tasks.episodes import Pool
from tasks.families import DatasetEpisodes, MemorizeEpisodes, OrderedStream, SumEpisodes, Task
from tasks.splits import VALIDATION_FRACTION, hold_out
from tasks.trust import check_user_task

DATASETS = ("digits", *(name.replace("-", "_") for name in CATALOGUE))


class TaskSplit(NamedTuple):
    """The same task family over disjoint example pools: train for meta-training, test for meta-test,
    validation for choosing checkpoints (None: fresh episodes of `train`, e.g. for synthetic tasks)."""

    train: Task
    test: Task
    validation: Task | None = None


@dataclasses.dataclass(frozen=True)
class DataOptions:
    resize: int = 0  # image side in pixels (0: as stored; 28 -> 14 or 7 averages blocks)
    dim: int = 0  # pad with zeros / crop the flattened input to this width (0: as is)
    num_classes: int = 0  # declare this many classes: more pads, fewer keeps only labels below it (0: as is)
    examples: int = 0  # keep only the first N examples of each split (0: all)
    data_dir: str = ""  # look here first for the IDX files (else METALEARN_DATA, cache, ../shared/data)
    scale: float = 1.0  # inputs become scale * x + offset after normalization, before `dim` padding (padding
    offset: float = 0.0  # stays 0) and `project` (a projection turns the offset into a per-task bias): probes


@dataclasses.dataclass(frozen=True)
class EpisodeOptions(DataOptions):
    permute: bool = True  # random label permutation per task
    permutations: int = 0  # 0: a fresh permutation per episode; N: one of N fixed permutations
    classes: int = 0  # k: each task uses k random classes, relabelled 0..k-1
    project: int = 0  # d: random linear projection of the inputs to d dimensions per task
    projections: int = 0  # 0: a fresh projection per episode; N: one of N fixed projections
    jitter: float = 0.0  # s: per episode, input unit u becomes x_u exp(s z_u) + s z'_u (z, z' ~ N(0, 1))


@dataclasses.dataclass(frozen=True)
class MemorizeOptions(DataOptions):
    items: int = 10  # inputs per episode, each with a random label, repeated in random order


@dataclasses.dataclass(frozen=True)
class OrderedOptions(DataOptions):
    per_class: int = 20  # training-phase examples per class
    queries: int = 100  # query-phase examples (no feedback)
    order: str = "sorted"  # 'sorted' (class 0 first) or 'random' class order
    permute: bool = True  # relabel the classes by a random permutation per episode
    group: int = 1  # classes per block; >1 interleaves a block's classes (class-incremental)


@dataclasses.dataclass(frozen=True)
class SumOptions:
    dim: int = 64  # input width


FAMILIES = {
    "episodes": (EpisodeOptions, "random examples of a dataset (the family used when only a dataset is named)"),
    "memorize": (MemorizeOptions, "random-label memorization of a few inputs"),
    "ordered": (OrderedOptions, "OrderedMNIST stream: class-ordered training phase, then queries without feedback"),
    "sum": (SumOptions, "synthetic: label = whether the standard normal input sums to >= 0 (no dataset)"),
}

AT_LEAST_ONE = {MemorizeOptions: ("items",), OrderedOptions: ("per_class", "group"), SumOptions: ("dim",)}  # others: >= 0


@functools.lru_cache(maxsize=16)
def load_pools(dataset: str, options: DataOptions) -> tuple[Pool, Pool, Pool, int]:
    """(train pool, validation pool, test pool, number of classes) of a dataset after preprocessing; the
    validation pool is a fixed slice of the train split that the train pool excludes. Cached per options."""
    if options.scale == 0:
        raise ValueError(f"{dataset}: scale=0 would make every input the constant offset; use a nonzero scale "
                         f"(scale=-1 inverts the inputs)")
    if dataset == "digits":
        if options.resize:
            raise ValueError("digits images are 8x8 and already standardized per pixel; drop resize= "
                             "(use dim= to pad them to another learner's input width)")
        train, test = load_digits_pools()
        (train_x, train_y), (test_x, test_y) = (np.asarray(train.x), np.asarray(train.y)), \
                                               (np.asarray(test.x), np.asarray(test.y))
        if options.examples:  # the pools are stored class by class: take "the first N" of a fixed shuffle
            train_order, test_order = (np.random.default_rng(0).permutation(len(y)) for y in (train_y, test_y))
            train_x, train_y, test_x, test_y = (train_x[train_order], train_y[train_order], test_x[test_order],
                                                test_y[test_order])
        num_classes = 10
    else:
        data = load_dataset(dataset.replace("_", "-"), options.data_dir or None)
        images = [preprocess.resize(x, options.resize) if options.resize else x for x in (data.train_x, data.test_x)]
        train_x, test_x = preprocess.normalize(*images)
        train_y, test_y, num_classes = data.train_y, data.test_y, data.num_classes
    if options.num_classes:
        if options.num_classes < num_classes:
            (train_x, train_y), (test_x, test_y) = (preprocess.fit_classes(train_x, train_y, options.num_classes),
                                                    preprocess.fit_classes(test_x, test_y, options.num_classes))
        num_classes = options.num_classes
    pools = []
    for x, y in ((train_x, train_y), (test_x, test_y)):
        x = x.reshape(len(x), -1) * options.scale + options.offset
        if options.dim:
            x = preprocess.fit_inputs(x, options.dim)
        if options.examples:
            x, y = x[: options.examples], y[: options.examples]
        pools.append(Pool(x=jnp.asarray(x, jnp.float32), y=jnp.asarray(y, jnp.int32)))
    train, validation = hold_out(pools[0], VALIDATION_FRACTION, f"the train split of {dataset}")
    return train, validation, pools[1], num_classes


def _class_table(pool: Pool, num_classes: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """[C, max count] example indices per class (rows padded by repeating) and the counts [C]."""
    y = np.asarray(pool.y)
    members = [np.flatnonzero(y == c) for c in range(num_classes)]
    if any(len(m) == 0 for m in members):
        raise ValueError(f"an ordered stream needs examples of every class, but classes "
                         f"{[c for c, m in enumerate(members) if len(m) == 0]} have none")
    width = max(len(m) for m in members)
    table = np.stack([np.resize(m, width) for m in members])
    return jnp.asarray(table, jnp.int32), jnp.asarray([len(m) for m in members], jnp.int32)


def _data_options(options: DataOptions) -> DataOptions:
    return DataOptions(**{f.name: getattr(options, f.name) for f in dataclasses.fields(DataOptions)})


def _build(family: str, dataset: str, options, spec: str) -> TaskSplit:
    if family == "sum":
        task = SumEpisodes(dim=options.dim, name=spec)
        return TaskSplit(task, task)
    train, validation, test, num_classes = load_pools(dataset, _data_options(options))
    if family == "episodes":
        kwargs = dict(pool_classes=num_classes, name=spec, permute=options.permute,
                      permutations=options.permutations, classes=options.classes, project=options.project,
                      projections=options.projections, jitter=options.jitter)
        if options.jitter < 0:
            raise ValueError(f"{spec}: jitter is the standard deviation of the per-unit log-gains and offsets; "
                             f"use a value >= 0 (0: no jitter), got {options.jitter}")
        if options.classes > num_classes:
            raise ValueError(f"{spec}: classes={options.classes} but the dataset has {num_classes} classes")
        if options.classes:  # drawn from all num_classes: an empty class would leave episodes short of classes
            present = set(np.unique(np.asarray(train.y)).tolist()) & set(np.unique(np.asarray(test.y)).tolist())
            empty = sorted(set(range(num_classes)) - present)
            if empty:
                raise ValueError(f"{spec}: classes= draws from all {num_classes} classes, but classes {empty} have "
                                 f"no examples (padded by num_classes= or cut by examples=)")
        return TaskSplit(*(DatasetEpisodes(pool=p, **kwargs) for p in (train, test, validation)))
    if family == "memorize":
        return TaskSplit(*(MemorizeEpisodes(pool=p, num_classes=num_classes, name=spec, items=options.items)
                           for p in (train, test, validation)))
    if options.order not in ("sorted", "random"):
        raise ValueError(f"{spec}: order must be 'sorted' or 'random', got {options.order!r}")

    def stream(pool: Pool, split: str) -> OrderedStream:
        phase, queries = hold_out(pool, 0.5, f"{spec}: the {split} split")
        table, counts = _class_table(phase, num_classes)
        return OrderedStream(pool=phase, query_pool=queries, by_class=table, class_counts=counts,
                             num_classes=num_classes, name=spec, per_class=options.per_class,
                             queries=options.queries, order=options.order, group=options.group,
                             permute=options.permute)

    return TaskSplit(stream(train, "train"), stream(test, "test"), stream(validation, "validation"))


def _user_task(module: str, function: str, options: dict[str, str], spec: str) -> TaskSplit:
    check_user_task(spec)
    try:
        make: Callable = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"task {spec!r}: cannot load user task {module}:{function} ({err}). Known tasks: "
                         f"{', '.join(DATASETS)}, families {', '.join(FAMILIES)}; see --list-tasks.") from None
    result = make(**options)
    return result if isinstance(result, TaskSplit) else TaskSplit(result, result)


def _with_validation(split: TaskSplit) -> TaskSplit:
    """A task without a validation pool of its own validates on (other) episodes of its meta-training task."""
    return split if split.validation is not None else split._replace(validation=split.train)


def _options(cls: type, options: dict[str, str], spec: str):
    """The family's options from the spec; counts and sizes below their minimum are refused here."""
    parsed = build(cls, options, f"task {spec!r}")
    for f in dataclasses.fields(parsed):
        value, low = getattr(parsed, f.name), 1 if f.name in AT_LEAST_ONE.get(cls, ()) else 0
        if isinstance(value, int) and not isinstance(value, bool) and value < low:
            raise ValueError(f"task {spec!r}: {f.name} must be at least {low}, got {value}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"task {spec!r}: {f.name} must be a finite number, got {value}")
    return parsed


def load_task(spec: str) -> TaskSplit:
    """Build the (meta-train, meta-test) pair a spec names; errors list what exists."""
    names, options = split_options(spec)
    family = names[0] if names and names[0] in FAMILIES else "episodes"
    rest = names[1:] if names and names[0] in FAMILIES else names
    if family == "sum":
        if rest:
            raise ValueError(f"task {spec!r}: sum takes no dataset, only options (sum:dim=64)")
        return _with_validation(_build(family, "", _options(SumOptions, options, spec), spec))
    if len(rest) == 1 and rest[0] in DATASETS:
        return _build(family, rest[0], _options(FAMILIES[family][0], options, spec), spec)
    if family == "episodes" and len(rest) == 2:
        return _with_validation(_user_task(rest[0], rest[1], options, spec))
    raise ValueError(f"unknown task {spec!r}; datasets: {', '.join(DATASETS)}; families: "
                     f"{', '.join(FAMILIES)} (e.g. ordered:mnist:per_class=20); or a user task module:function. "
                     f"Run with --list-tasks for every option.")


def check_same_shape(named: dict[str, Task]) -> None:
    """The one check that tasks fit one learner: every task (keyed by how to name it in the error) has the
    first one's input size and class count."""
    (first, reference), *rest = named.items()
    for name, task in rest:
        if (task.input_size, task.num_classes) != (reference.input_size, reference.num_classes):
            raise ValueError(f"{name} has {task.input_size} inputs and {task.num_classes} classes, but {first} has "
                             f"{reference.input_size} and {reference.num_classes}; they must share one shape: use "
                             f"resize=, dim= and num_classes= options to make them agree.")


def describe_tasks() -> str:
    """The registry as text, for --list-tasks."""
    lines = [f"datasets: {', '.join(DATASETS)}  (digits is embedded; the rest are MNIST-family IDX files)", "",
             "families (spec: [family:]dataset[:key=value,...]):"]
    for name, (options, about) in FAMILIES.items():
        lines.append(f"  {name:<9} {about}")
        for f in dataclasses.fields(options):
            lines.append(f"      {f.name}={f.default!r}")
    lines += ["", "user tasks: module:function[:key=value,...] -> a function returning a TaskSplit (or one task)",
              "examples: mnist:resize=14,project=64  fashion_mnist:resize=14  ordered:mnist:resize=14,per_class=20",
              "          fashion_mnist:resize=7,scale=-1 (inverted inputs)  fashion_mnist:resize=7,offset=2"]
    return "\n".join(lines)
