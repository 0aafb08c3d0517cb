"""Task distributions for meta-learning: datasets, task families and episode samplers."""

from tasks.episodes import Episode, Pool, sample_permuted_episode
from tasks.registry import TASKS, TaskSplit, load_task
from tasks.task import Task

__all__ = ["Episode", "Pool", "Task", "TaskSplit", "TASKS", "load_task", "sample_permuted_episode"]
