"""The size-ratio experiment as a grid: learners placed at (algorithm size, state size) points x number of
distinct meta-training tasks x seeds. Each point is meta-trained (ES or backprop, per learner) and then
meta-tested on unseen tasks; hand-designed learners, tuned on the meta-training distribution, are the
reference lines.

A sweep directory holds `sweep.json` (the config), `baselines.json`, and `points/<id>/` with the point's
run (checkpoints, metrics) and `result.json`, written last and atomically: a point with a result is done
and never rerun, one without resumes from its last checkpoint. The report gathers the config, baselines and
results into one small `sweep_results.json`; committed next to the tables, it outlives the run directory
(`restore` rebuilds a sweep directory's finished points from it, so a rerun trains only the rest).
Everything here is pure bookkeeping plus the two jobs (`run_point`, `run_baselines`) that a worker process
executes; `launch/sweep.py` schedules them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from metalearn.outer import outer_fields
from metalearn.training import keys
from metalearn.training.config import MetaTrainConfig

BASELINES_JOB = "baselines"
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.+-]|_(?!_))*(?<!_)")  # no '__': it separates a point id's parts
ARCHIVE_FORMAT = "metalearn-sweep-results/1"
SHARED_ONLY = ("episode_length", "inner_batch")  # every point is scored on the same episodes: set them in base


@dataclasses.dataclass(frozen=True)
class LearnerPoint:
    """A learner at one (algorithm size, state size) point, with the outer optimizer that trains it."""

    label: str
    learner: str  # learner spec, e.g. 'meta_rnn:hidden=64'
    outer: str = "es"
    overrides: dict = dataclasses.field(default_factory=dict)  # MetaTrainConfig fields for this learner


@dataclasses.dataclass(frozen=True)
class TaskLevel:
    """A meta-training distribution with `count` distinct tasks (0: unbounded, a fresh task per episode)."""

    label: str
    count: int
    spec: str  # task spec of the meta-training tasks (their train split)


@dataclasses.dataclass(frozen=True)
class Block:
    """A sub-grid: these learners crossed with these task levels (labels)."""

    learners: tuple[str, ...]
    tasks: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Point:
    learner: LearnerPoint
    task: TaskLevel
    seed: int

    @property
    def id(self) -> str:
        return f"{self.learner.label}__{self.task.label}__s{self.seed}"


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    name: str
    learners: tuple[LearnerPoint, ...]
    tasks: tuple[TaskLevel, ...]
    blocks: tuple[Block, ...]
    seeds: tuple[int, ...]
    unseen: dict  # label -> task spec meta-tested on (its test split); ordered streams score their query phase
    baselines: dict  # name -> learner specs to choose from (the best on the training tasks is reported)
    base: dict = dataclasses.field(default_factory=dict)  # MetaTrainConfig fields shared by every point
    eval_episodes: int = 64  # final meta-test episodes per task, points and baselines (base's: monitoring)
    eval_seed: int = 0

    def __post_init__(self):
        for kind, items in (("learner", self.learners), ("task level", self.tasks)):
            labels = [item.label for item in items]
            if len(set(labels)) != len(labels) or not all(LABEL.fullmatch(str(label)) for label in labels):
                raise ValueError(f"sweep {self.name!r}: {kind} labels must be unique, start with a letter or digit "
                                 f"and use only letters, digits, '.', '+', '-' and single '_'; got {labels}")
        learners, tasks = {p.label for p in self.learners}, {t.label for t in self.tasks}
        for block in self.blocks:
            unknown = (set(block.learners) - learners) | (set(block.tasks) - tasks)
            if unknown:
                raise ValueError(f"sweep {self.name!r}: a block names unknown labels {sorted(unknown)}; "
                                 f"learners: {sorted(learners)}, task levels: {sorted(tasks)}")
        if not self.seeds or not self.unseen or not self.blocks:
            raise ValueError(f"sweep {self.name!r} needs seeds, unseen tasks and at least one block")
        if not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in self.seeds):
            raise ValueError(f"sweep {self.name!r}: seeds must be integers, got {list(self.seeds)}")
        for p in self.learners:
            if set(p.overrides) & set(SHARED_ONLY):
                raise ValueError(f"sweep {self.name!r}: learner {p.label!r} overrides {sorted(set(p.overrides) & set(SHARED_ONLY))}; "
                                 f"{', '.join(SHARED_ONLY)} must be set in base, so that every point and baseline "
                                 f"is scored on the same episodes")
        if self.eval_episodes < 2:
            raise ValueError("eval_episodes must be at least 2 (intervals need two episodes)")
        for point in self.points():
            self.meta_config(point)  # a bad field or value fails here, before anything runs
        self._check_specs()

    def _check_specs(self) -> None:
        """Learner and baseline specs are parsed here, so that a typo fails before any point runs."""
        from metalearn.learners import make_learner

        specs = [p.learner for p in self.learners] + [s for grid in self.baselines.values() for s in grid]
        for spec in specs:
            try:
                make_learner(spec)
            except (ValueError, TypeError) as err:
                raise ValueError(f"sweep {self.name!r}: bad learner spec {spec!r}: {err}") from None

    def points(self) -> list[Point]:
        """Every (learner, task level, seed) the blocks name, once, in block order."""
        learners, tasks = {p.label: p for p in self.learners}, {t.label: t for t in self.tasks}
        seen, points = set(), []
        for block in self.blocks:
            for seed in self.seeds:
                for lab in block.learners:
                    for tab in block.tasks:
                        point = Point(learners[lab], tasks[tab], seed)
                        if point.id not in seen:
                            seen.add(point.id)
                            points.append(point)
        return points

    def point(self, point_id: str) -> Point:
        for point in self.points():
            if point.id == point_id:
                return point
        raise ValueError(f"sweep {self.name!r} has no point {point_id!r}")

    def meta_config(self, point: Point, monitor: str | None = None) -> MetaTrainConfig:
        """The meta-training config of a point; progress is monitored on `monitor` (default: the first
        unseen task; `run_point` passes the first one whose data is available)."""
        fields = {**self.base, **point.learner.overrides}
        known = {f.name for f in dataclasses.fields(MetaTrainConfig)} | outer_fields(point.learner.outer)
        owned = {"learner", "outer", "train_tasks", "test_tasks", "seed"}
        bad = set(fields) - (known - owned)
        if bad:
            raise ValueError(f"sweep {self.name!r}: {sorted(bad)} cannot be set in base or overrides "
                             f"(known: {sorted(known - owned)}; learner, outer, tasks and seed come from the grid)")
        return MetaTrainConfig.from_flat({**fields, "learner": point.learner.learner, "outer": point.learner.outer,
                                          "train_tasks": (point.task.spec,),
                                          "test_tasks": (monitor or next(iter(self.unseen.values())),),
                                          "seed": point.seed})

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> SweepConfig:
        try:
            return cls(**{**data,
                          "learners": tuple(LearnerPoint(**p) for p in data["learners"]),
                          "tasks": tuple(TaskLevel(**t) for t in data["tasks"]),
                          "blocks": tuple(Block(tuple(b["learners"]), tuple(b["tasks"])) for b in data["blocks"]),
                          "seeds": tuple(data["seeds"])})
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a valid sweep config ({err}); start from `launch/sweep.py show cpu`") from None


def load_sweep(sweep_dir: Path) -> SweepConfig:
    path = Path(sweep_dir) / "sweep.json"
    if not path.exists():
        raise ValueError(f"{sweep_dir} is not a sweep directory (no sweep.json); start one with "
                         f"`launch/sweep.py run --preset cpu --out {sweep_dir}`")
    return SweepConfig.from_json(json.loads(path.read_text()))


def point_dir(sweep_dir: Path, point_id: str) -> Path:
    return Path(sweep_dir) / "points" / point_id


def is_done(sweep_dir: Path, job: str) -> bool:
    path = Path(sweep_dir) / "baselines.json" if job == BASELINES_JOB else point_dir(sweep_dir, job) / "result.json"
    return path.exists()


def archive(sweep: SweepConfig, results: list[dict], baselines: dict) -> dict:
    """Everything the report reads, in one JSON object (`restore` reads it back)."""
    return {"format": ARCHIVE_FORMAT, "sweep": sweep.to_json(), "baselines": baselines, "points": results}


def check_same_sweep(sweep_dir: Path, sweep: SweepConfig, what: str) -> None:
    """A sweep directory holds one sweep: `sweep` must be the one stored there, if any (compared as JSON
    text, so reordering the unseen tasks counts as a change)."""
    stored = Path(sweep_dir) / "sweep.json"
    if stored.exists() and json.dumps(load_sweep(sweep_dir).to_json()) != json.dumps(sweep.to_json()):
        raise ValueError(f"{sweep_dir} holds a different sweep ({stored}) than {what}; resume it with "
                         f"`launch/sweep.py run --out {sweep_dir}` or choose another directory")


def restore(sweep_dir: Path, archive_path: Path) -> int:
    """Write an archive's sweep.json, baselines.json and point results into `sweep_dir` (files already there
    are kept; the sweep must be the same), so that those points count as done. Returns how many it wrote."""
    try:
        data = json.loads(Path(archive_path).read_text())
        if data.get("format") != ARCHIVE_FORMAT:
            raise ValueError(f"its format is {data.get('format')!r}")
        sweep, baselines = SweepConfig.from_json(data["sweep"]), data["baselines"]
        results = {r["point"]: r for r in data["points"]}
    except (OSError, json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{archive_path} is not a readable sweep archive ({type(err).__name__}: {err}); the "
                         f"report of a sweep writes one as <sweep dir>/sweep_results.json") from None
    unknown = sorted(set(results) - {p.id for p in sweep.points()})
    if unknown:
        raise ValueError(f"{archive_path} has results for points its sweep does not define: {unknown[:3]}")
    check_same_sweep(sweep_dir, sweep, archive_path)
    sweep_dir = Path(sweep_dir)
    wanted = [(sweep_dir / "sweep.json", sweep.to_json()), (sweep_dir / "baselines.json", baselines or None)]
    wanted += [(point_dir(sweep_dir, point) / "result.json", result) for point, result in results.items()]
    written = 0
    for path, content in wanted:
        if content is not None and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, content)
            written += path.name == "result.json"
    return written


def write_json_atomic(path: Path, data: Any) -> None:
    """Write then rename: a kill leaves the old file or the new one, never half of one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def load_unseen(sweep: SweepConfig) -> dict:
    """label -> test split, or the reason it is unavailable (e.g. a dataset that is not on this machine)."""
    from tasks import load_task
    from tasks.datasets import DatasetNotFoundError

    tasks = {}
    for label, spec in sweep.unseen.items():
        try:
            tasks[label] = load_task(spec).test
        except DatasetNotFoundError as err:  # a corrupt file (ChecksumError) is an error to fix, not a skip
            tasks[label] = f"unavailable: {err}"
    return tasks


def _score_unseen(unseen: dict, score) -> dict:
    """`score(task)` for each available unseen task; an unavailable one keeps its reason (a string)."""
    return {label: task if isinstance(task, str) else score(task) for label, task in unseen.items()}


def _scorer(sweep: SweepConfig, episode_length: int, key):
    """score(learner, params, task) on `eval_episodes` episodes drawn from `key` (the same for every learner)."""
    import jax

    from metalearn.rollout.evaluation import evaluate, summary

    def score(learner, params, task, batch: int = 1) -> dict:
        run = jax.jit(lambda p, t: evaluate(learner, p, t, key, sweep.eval_episodes, episode_length, batch))
        return summary(run(params, task))

    return score


def run_point(sweep_dir: Path, point_id: str, progress: bool = False) -> dict:
    """Meta-train one point on one device (resuming its checkpoints), meta-test the checkpoint chosen on the
    validation slice (the last one if the run never validated), write result.json."""
    from metalearn.outer.mesh import make_mesh
    from metalearn.learners import learner_sizes, step_flops
    from metalearn.training.loop import MetaTraining, meta_train
    from metalearn.training.metrics import read_metrics
    from metalearn.training.run import load_run
    from metalearn.training.selection import best_selection
    from tasks import load_task

    sweep = load_sweep(sweep_dir)
    point = sweep.point(point_id)
    unseen = load_unseen(sweep)
    available = [sweep.unseen[label] for label, task in unseen.items() if not isinstance(task, str)]
    if not available:
        raise ValueError(f"none of the unseen tasks of sweep {sweep.name!r} has its data here: "
                         + "; ".join(unseen.values()))
    config = sweep.meta_config(point, monitor=available[0])
    run_dir = point_dir(sweep_dir, point_id) / "run"
    tic = time.perf_counter()
    training = MetaTraining(config, make_mesh(1))
    state = meta_train(training, run_dir, resume=True, progress=progress)
    selected = best_selection(run_dir)  # model selection on the validation slice only
    params = load_run(run_dir, best=True).meta_params if selected else state.es.params
    score = _scorer(sweep, config.episode_length, keys.evaluation(sweep.eval_seed))
    learner, batch = training.learner, config.inner_batch
    scores = {"meta_train": score(learner, params, load_task(point.task.spec).train, batch),
              **_score_unseen(unseen, lambda task: score(learner, params, task, batch))}
    sizes = learner_sizes(learner, training.spec)
    result = {"point": point_id, "learner": point.learner.label, "learner_spec": point.learner.learner,
              "outer": point.learner.outer, "tasks": point.task.label, "task_count": point.task.count,
              "seed": point.seed, "algorithm_size": sizes.algorithm, "state_size": sizes.state,
              "flops_per_step": step_flops(learner, training.spec), "generations": config.generations,
              "train_seconds": sum(r["seconds"] for r in read_metrics(run_dir)),
              "wall_seconds_last_session": time.perf_counter() - tic, "scores": scores,
              "scored_checkpoint": selected or {"generation": config.generations, "selected_by": "last"}}
    write_json_atomic(point_dir(sweep_dir, point_id) / "result.json", result)
    return result


def run_baselines(sweep_dir: Path) -> dict:
    """Each baseline family: pick the spec with the best accuracy on the unbounded (or largest) meta-training
    distribution, on episodes other than the meta-test ones; score it on every unseen task. The warm points'
    start (`init_from`), if any, is scored alike, so that what their ES steps changed can be read."""
    from metalearn.learners import TaskSpec, learner_sizes, make_learner, step_flops
    from metalearn.training.run import load_run
    from metalearn.training.warm_start import resolve
    from tasks import load_task

    sweep = load_sweep(sweep_dir)
    length = MetaTrainConfig(**sweep.base).episode_length
    widest = max(sweep.tasks, key=lambda t: (t.count == 0, t.count))
    tune_task = load_task(widest.spec).train
    tune = _scorer(sweep, length, keys.tuning(sweep.eval_seed))
    score = _scorer(sweep, length, keys.evaluation(sweep.eval_seed))
    unseen = load_unseen(sweep)
    task_spec = TaskSpec.of(tune_task, length)

    out = {"tuned_on": widest.spec}

    def all_scores(learner, params) -> dict:
        return {"meta_train": score(learner, params, tune_task),
                **_score_unseen(unseen, lambda task: score(learner, params, task))}

    for name, specs in sweep.baselines.items():
        options = {spec: tune(make_learner(spec), {}, tune_task)["score"] for spec in specs}
        best = max(options, key=lambda spec: -math.inf if math.isnan(options[spec]) else options[spec])
        learner = make_learner(best)
        sizes = learner_sizes(learner, task_spec)
        scores = all_scores(learner, {})
        out[name] = {"spec": best, "tuning_score": options, "algorithm_size": sizes.algorithm,
                     "state_size": sizes.state, "flops_per_step": step_flops(learner, task_spec), "scores": scores}
    for source in dict.fromkeys(p.overrides["init_from"] for p in sweep.learners if p.overrides.get("init_from")):
        run = load_run(resolve(source))  # the warm points' start, scored before their ES steps
        sizes = learner_sizes(run.learner, task_spec)
        scores = all_scores(run.learner, run.meta_params)
        out[f"start {source}"] = {"spec": source, "outer": "warm start", "tasks": " ".join(run.config.train_tasks),
                                  "algorithm_size": sizes.algorithm,
                                  "state_size": sizes.state, "flops_per_step": step_flops(run.learner, task_spec),
                                  "scores": scores}
    write_json_atomic(Path(sweep_dir) / "baselines.json", out)
    return out
