"""Task names -> (meta-train, meta-test) task pairs."""

from __future__ import annotations

from typing import NamedTuple

from tasks.digits import NUM_CLASSES, load_digits_pools
from tasks.task import Task


class TaskSplit(NamedTuple):
    """The same task family over disjoint example pools: train for meta-training, test for meta-test."""

    train: Task
    test: Task


def _digits() -> TaskSplit:
    train, test = load_digits_pools()
    return TaskSplit(Task(train, NUM_CLASSES, "digits"), Task(test, NUM_CLASSES, "digits"))


TASKS = {"digits": _digits}


def load_task(name: str) -> TaskSplit:
    """Build a named task family; unknown names raise a ValueError that lists the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]()
