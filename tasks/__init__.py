"""Task distributions for meta-learning: datasets, task families and episode samplers."""

from tasks.episodes import Episode, Pool
from tasks.families import DatasetEpisodes, MemorizeEpisodes, OrderedStream, SumEpisodes, Task
from tasks.registry import DATASETS, FAMILIES, TaskSplit, check_same_shape, describe_tasks, load_task

__all__ = ["DATASETS", "FAMILIES", "DatasetEpisodes", "Episode", "MemorizeEpisodes", "OrderedStream", "Pool",
           "SumEpisodes", "Task", "TaskSplit", "describe_tasks", "load_task"]
