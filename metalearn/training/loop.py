"""Meta-training: task sampler -> inner loop -> fitness -> outer optimizer (ES, backprop) -> checkpoint.

`MetaTraining` wires the pieces for one config and device mesh and exposes jitted, pure functions; the
loop in `meta_train` owns the side effects (metrics file, checkpoints, progress bar).
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from metalearn.learners import TaskSpec, check_task_fits, make_learner
from metalearn.learners.base import PyTree
from metalearn.outer import OuterMetrics, OuterState
from metalearn.outer.mesh import replicate
from metalearn.rollout.evaluation import Evaluation, evaluate, summary
from metalearn.rollout.inner_loop import mean_fitness
from metalearn.training import checkpoint, distributed
from metalearn.training.config import MetaTrainConfig
from metalearn.training.metrics import plot_training, read_metrics
from metalearn.training.run import write_run_info
from tasks import Task, check_same_shape, load_task

EVAL_KEY = 1  # fold-in constant: the meta-test episodes are the same at every evaluation of a run


class RunState(NamedTuple):
    """Everything a checkpoint holds besides the config."""

    es: OuterState  # the outer optimizer's state (the name is kept: checkpoints store it under 'es')
    generation: chex.Array  # completed generations
    key: chex.Array  # raw key data of the run key; generation g uses fold_in(run key, g)


class MetaTraining:
    """One config on one mesh: the learner, its tasks and the jitted generation and evaluation steps.

    `train_tasks` / `test_tasks` replace the config's task specs (e.g. synthetic tasks in a benchmark).
    """

    def __init__(self, config: MetaTrainConfig, mesh: Mesh, train_tasks: Sequence[Task] | None = None,
                 test_tasks: Sequence[Task] | None = None):
        self.config, self.mesh = config, mesh
        self.learner = make_learner(config.learner)
        self.train_tasks = tuple(train_tasks or (load_task(s).train for s in config.train_tasks))
        self.test_tasks = tuple(test_tasks or (load_task(s).test for s in config.test_tasks))
        first = self.train_tasks[0]
        self.spec = TaskSpec(first.input_size, first.num_classes, first.episode_length(config.episode_length))
        check_same_shape({f"meta-training task {i} ({task.name!r})": task for i, task in enumerate(self.train_tasks)})
        template = jax.eval_shape(lambda k: self.learner.init_meta_params(k, self.spec), jax.random.key(0))
        for task in self.test_tasks:
            check_task_fits(self.learner, template, task)
        config.outer.check(mesh.devices.size, config.episodes_per_member)
        # settings that depend on the learner (ES chunk 'auto') are fixed here; `config` keeps what was asked
        self.outer_config = config.outer.resolve(self.learner, self.spec, mesh.devices.size,
                                                 len(self.train_tasks) * config.episodes_per_member)
        # the tasks' arrays go to every device once per run (global arrays with several processes)
        self.train_tasks, self.test_tasks = replicate((self.train_tasks, self.test_tasks), mesh)
        self.optimizer = optax.adam(config.lr)
        # the outer optimizer says how the inner loop runs the learner (backprop: truncated, optionally)
        self._inner_learner = self.outer_config.wrap(self.learner)
        self.outer = self.outer_config.build(self._fitness, self.optimizer, mesh)
        self.generation_step: Callable[[RunState, tuple], tuple[RunState, OuterMetrics]] = jax.jit(
            self._generation, donate_argnums=0)
        self.evaluate: Callable[[PyTree, Task], Evaluation] = jax.jit(self._evaluate)

    def init(self) -> RunState:
        key = jax.random.key(self.config.seed)
        params = self.learner.init_meta_params(jax.random.fold_in(key, 0), self.spec)
        state = RunState(self.outer.init(params), jnp.int32(0), jax.random.key_data(key))
        return replicate(state, self.mesh)

    def _fitness(self, params: PyTree, data: tuple) -> tuple[chex.Array, chex.Array]:
        """Mean cross-entropy (to minimise) and accuracy of one member over this generation's episodes."""
        return mean_fitness(self._inner_learner, params, data, self.spec.num_classes, self.config.inner_batch)

    def _generation(self, state: RunState, tasks: tuple) -> tuple[RunState, OuterMetrics]:
        """One outer step. ES: every member is scored on the same episodes of every training task;
        backprop: one gradient step on those episodes, split over devices."""
        cfg = self.config
        per_task = cfg.episodes_per_member
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.generation)
        noise_key, task_key, init_key = jax.random.split(key, 3)
        task_keys = jax.random.split(task_key, len(tasks) * per_task).reshape(len(tasks), per_task)
        init_keys = jax.random.split(init_key, len(tasks) * per_task).reshape(len(tasks), per_task)
        data = tuple((init_keys[i], jax.vmap(lambda k: task.sample(k, cfg.episode_length))(task_keys[i]))
                     for i, task in enumerate(tasks))
        new_es, metrics = self.outer.step(state.es, noise_key, data)
        return RunState(new_es, state.generation + 1, state.key), metrics

    @property
    def eval_key(self) -> chex.PRNGKey:
        """The same meta-test episodes at every evaluation of a run, and for its baselines."""
        return jax.random.fold_in(jax.random.key(self.config.seed), EVAL_KEY)

    def _evaluate(self, params: PyTree, task: Task) -> Evaluation:
        cfg = self.config
        return evaluate(self.learner, params, task, self.eval_key, cfg.eval_episodes, cfg.episode_length,
                        cfg.inner_batch)

    def evaluate_all(self, params: PyTree) -> dict:
        """Metrics-line fields: test_acc / test_acc_last20 / test_loss averaged over the meta-test tasks (and
        query_acc over those with a query phase), plus each task's own under 'tests'."""
        per_task = {task.name: summary(self.evaluate(params, task)) for task in self.test_tasks}
        record = {f"test_{k}": float(np.mean([r[k] for r in per_task.values()])) for k in ("acc", "acc_last20", "loss")}
        queries = [r["query_acc"] for r in per_task.values() if r["query_acc"] is not None]
        if queries:
            record["test_query_acc"] = float(np.mean(queries))
        return {**record, "tests": per_task}


def _truncate_metrics(path: Path, generation: int) -> None:
    """Drop metric lines past `generation`: on resume they are recomputed, and must not appear twice."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines()
                 if line.strip() and json.loads(line)["generation"] <= generation]
        path.write_text("".join(line + "\n" for line in lines))


def reference_scores(training: MetaTraining, params: PyTree) -> dict[str, dict]:
    """Meta-test scores of the untrained algorithm and of hand-designed learners on the same episodes."""
    cfg, key = training.config, training.eval_key
    scores = {"untrained": training.evaluate_all(params)}
    for spec in ("sgd", "class_mean"):
        baseline = make_learner(spec)
        run = jax.jit(lambda t: evaluate(baseline, {}, t, key, cfg.eval_episodes, cfg.episode_length))
        scores[spec] = {task.name: summary(run(task)) for task in training.test_tasks}
    return scores


def meta_train(training: MetaTraining, run_dir: Path, resume: bool = False, progress: bool = True) -> RunState:
    """Run (or resume) meta-training into `run_dir`; returns the final state.

    Files: run.json (config, task shape, environment); metrics.jsonl (one line per generation; evaluation
    lines add test_acc, test_acc_last20 and per-task scores); training.png (fitness and meta-test accuracy);
    baselines.json (untrained algorithm, online SGD and nearest class mean on the evaluation episodes);
    checkpoints/ (orbax, every `checkpoint_every` generations and at the end, the last 3 kept); best/ (the
    checkpoint with the highest mean meta-test accuracy so far).

    With several processes (metalearn.training.distributed) every process runs this loop in step, computing the same
    replicated numbers; only process 0 writes run.json, metrics.jsonl, baselines.json and the plot, and every
    process takes part in each orbax checkpoint save (orbax writes replicated arrays once and synchronizes the
    processes itself), so `run_dir` must be one shared directory.
    """
    from tqdm import tqdm

    run_dir, config, mesh = Path(run_dir), training.config, training.mesh
    main = distributed.is_main()
    state = training.init()
    metrics_path = run_dir / "metrics.jsonl"
    if resume:
        steps = checkpoint.saved_steps(run_dir)
        if steps:
            state = replicate(checkpoint.restore(run_dir, steps[-1], state), mesh)
            if main:
                _truncate_metrics(metrics_path, steps[-1])
    best = -1.0
    if main:
        best = max((r["test_acc"] for r in read_metrics(run_dir) if "test_acc" in r), default=-1.0)
    best = distributed.broadcast_float(best)  # every process must take the same best-checkpoint decisions
    run_dir.mkdir(parents=True, exist_ok=True)
    start = int(state.generation)
    if start == 0:
        scores = reference_scores(training, state.es.params)  # every process: computations on global arrays
        if main:
            metrics_path.unlink(missing_ok=True)
            write_run_info(run_dir, config, training.spec, mesh.devices.size)
            (run_dir / "baselines.json").write_text(json.dumps(scores, indent=1))

    bar = tqdm(range(start, config.generations), initial=start, total=config.generations, disable=not (progress and main),
               unit="gen", dynamic_ncols=True, mininterval=1.0)
    last_eval = {}
    with metrics_path.open("a") if main else contextlib.nullcontext() as log:
        for index in bar:
            tic = time.perf_counter()
            state, metrics = training.generation_step(state, training.train_tasks)
            generation = index + 1
            metrics = jax.device_get(metrics)  # one transfer; it waits for the device, so time after it
            record = {"generation": generation, "train_fitness": float(metrics.fitness.mean()),
                      "train_acc": float(metrics.accuracy.mean()), "grad_norm": float(metrics.grad_norm),
                      "seconds": time.perf_counter() - tic}
            if generation % config.eval_every == 0 or generation == config.generations:
                record.update(training.evaluate_all(state.es.params))
                last_eval = {k: record[k] for k in ("test_acc", "test_acc_last20")}
            if main:
                log.write(json.dumps(record) + "\n")
                log.flush()
            if record.get("test_acc", -1.0) > best:
                best = record["test_acc"]
                checkpoint.save(run_dir, generation, state, config, kind=checkpoint.BEST)
            if generation % config.checkpoint_every == 0 or generation == config.generations:
                checkpoint.save(run_dir, generation, state, config)
            bar.set_postfix(fitness=f"{record['train_fitness']:.3f}", train_acc=f"{record['train_acc']:.2f}",
                            **{k: f"{v:.3f}" for k, v in last_eval.items()})
    if main:
        plot_training(run_dir)
    return state
