"""Meta-training: task sampler -> inner loop -> fitness -> outer optimizer (ES, backprop) -> checkpoint.

`MetaTraining` wires the pieces for one config and device mesh and exposes jitted, pure functions; the
loop in `meta_train` owns the side effects (metrics file, checkpoints, progress bar).
"""

from __future__ import annotations

import contextlib
import json
import shutil
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
from metalearn.rollout.imitation import check_imitation
from metalearn.rollout.inner_loop import Teacher, mean_fitness
from metalearn.training import checkpoint, distributed, guards, keys, runlock
from metalearn.training.config import MetaTrainConfig
from metalearn.training.interrupt import Interrupted, StopOnSignal
from metalearn.training.metrics import plot_training, read_metrics, rewrite_metrics
from metalearn.training.run import write_run_info
from metalearn.training.warm_start import warm_start
from tasks import Task, check_same_shape, load_task

class RunState(NamedTuple):
    """Everything a checkpoint holds besides the config."""

    es: OuterState  # the outer optimizer's state (the name is kept: checkpoints store it under 'es')
    generation: chex.Array  # completed generations
    key: chex.Array  # raw key data of the run's root key; generation g uses keys.generation(root, g)


class MetaTraining:
    """One config on one mesh: the learner, its tasks and the jitted generation and evaluation steps.

    `train_tasks` / `test_tasks` / `val_tasks` replace the config's task specs (e.g. synthetic tasks in a
    benchmark). Validation tasks (default: the meta-training specs on their validation slices) choose the
    best checkpoint; meta-test tasks are only reported.
    """

    def __init__(self, config: MetaTrainConfig, mesh: Mesh, train_tasks: Sequence[Task] | None = None,
                 test_tasks: Sequence[Task] | None = None, val_tasks: Sequence[Task] | None = None):
        self.config, self.mesh = config, mesh
        self.learner = make_learner(config.learner)
        self.train_tasks = tuple(train_tasks or _load(config.train_tasks, "train", "meta-training"))
        self.test_tasks = tuple(test_tasks or _load(config.test_tasks, "test", "meta-test"))
        self.val_tasks = tuple(val_tasks or _load(config.val_tasks or config.train_tasks, "validation", "validation"))
        first = self.train_tasks[0]
        self.spec = TaskSpec.of(first, config.episode_length)
        check_same_shape({f"meta-training task {i} ({task.name!r})": task for i, task in enumerate(self.train_tasks)})
        template = jax.eval_shape(lambda k: self.learner.init_meta_params(k, self.spec), jax.random.key(0))
        for role, tasks in (("meta-test", self.test_tasks), ("validation", self.val_tasks)):
            for task in tasks:
                try:
                    check_task_fits(self.learner, template, task)
                except ValueError as err:
                    raise ValueError(f"{role} {err}") from None
        config.outer.check(mesh.devices.size, config.episodes_per_member)
        # settings that depend on the learner (ES chunk 'auto') are fixed here; `config` keeps what was asked
        self.outer_config = config.outer.resolve(self.learner, self.spec, mesh.devices.size,
                                                 len(self.train_tasks) * config.episodes_per_member)
        # the tasks' arrays go to every device once per run (global arrays with several processes)
        self.train_tasks, self.test_tasks, self.val_tasks = replicate(
            (self.train_tasks, self.test_tasks, self.val_tasks), mesh)
        self.optimizer = optax.adam(config.lr)
        self.teacher = _teacher(config, self.spec)
        # the outer optimizer says how the inner loop runs the learner (backprop: truncated, optionally)
        self._inner_learner = self.outer_config.wrap(self.learner)
        self.outer = self.outer_config.build(self.member_fitness, self.optimizer, mesh)
        self.generation_step: Callable[[RunState, tuple], tuple[RunState, OuterMetrics]] = jax.jit(
            self.generation, donate_argnums=0)
        self.evaluate: Callable[[PyTree, Task, chex.PRNGKey], Evaluation] = jax.jit(self._evaluate)

    def init(self, warm: bool = True) -> RunState:
        """The state of generation 0: the learner's initialisation, or with `warm` the meta-parameters of
        `config.init_from` (a template to restore into needs neither: `warm=False` skips reading it)."""
        params = self.learner.init_meta_params(keys.init(self.config.seed), self.spec)
        if warm and self.config.init_from:
            params = warm_start(self.learner, params, self.config.init_from)
        state = RunState(self.outer.init(params), jnp.int32(0), jax.random.key_data(keys.root(self.config.seed)))
        return replicate(state, self.mesh)

    def member_fitness(self, params: PyTree, data: tuple) -> tuple[chex.Array, chex.Array]:
        """Mean cross-entropy (to minimise) and accuracy of one member over this generation's episodes."""
        return mean_fitness(self._inner_learner, params, data, self.spec.num_classes, self.config.inner_batch,
                            self.teacher)

    def generation(self, state: RunState, tasks: tuple) -> tuple[RunState, OuterMetrics]:
        """One outer step. ES: every member is scored on the same episodes of every training task;
        backprop: one gradient step on those episodes, split over devices."""
        noise_key, data = self.episodes(jax.random.wrap_key_data(state.key), state.generation, tasks)
        new_es, metrics = self.outer.step(state.es, noise_key, data)
        new = RunState(new_es, state.generation + 1, state.key)
        return guards.keep_if_finite(state, new, metrics.fitness), metrics  # not finite: generation stays

    def episodes(self, run_key: chex.PRNGKey, generation: chex.Array | int, tasks: tuple) -> tuple[chex.PRNGKey, tuple]:
        """Generation `generation`'s noise key and fitness data: per task, (init keys [E], episodes [E, ...])."""
        cfg = self.config
        per_task = cfg.episodes_per_member
        noise_key, task_key, init_key = keys.generation(run_key, generation)
        task_keys = jax.random.split(task_key, len(tasks) * per_task).reshape(len(tasks), per_task)
        init_keys = jax.random.split(init_key, len(tasks) * per_task).reshape(len(tasks), per_task)
        data = tuple((init_keys[i], jax.vmap(lambda k: task.sample(k, cfg.episode_length))(task_keys[i]))
                     for i, task in enumerate(tasks))
        return noise_key, data

    @property
    def eval_key(self) -> chex.PRNGKey:
        """The same meta-test episodes at every evaluation of a run, and for its baselines."""
        return keys.evaluation(self.config.seed)

    def _evaluate(self, params: PyTree, task: Task, key: chex.PRNGKey) -> Evaluation:
        cfg = self.config
        return evaluate(self.learner, params, task, key, cfg.eval_episodes, cfg.episode_length, cfg.inner_batch,
                        self.mesh)  # the episodes split over the devices, in kernels sized like the population's

    def evaluate_all(self, params: PyTree) -> dict:
        """Metrics-line fields: val_score, the mean score over the validation tasks (which chooses `best/`);
        test_score / test_acc / test_acc_last20 / test_loss averaged over the meta-test tasks (and
        test_query_acc over those with a query phase), plus each task's own under 'validation' and 'tests'."""
        val_key = keys.validation(self.config.seed)
        validation = {task.name: summary(self.evaluate(params, task, val_key)) for task in self.val_tasks}
        per_task = {task.name: summary(self.evaluate(params, task, self.eval_key)) for task in self.test_tasks}
        record = {"val_score": float(np.mean([r["score"] for r in validation.values()]))}
        record |= {f"test_{k}": float(np.mean([r[k] for r in per_task.values()]))
                   for k in ("score", "acc", "acc_last20", "loss")}
        queries = [r["query_acc"] for r in per_task.values() if r["query_acc"] is not None]
        if queries:
            record["test_query_acc"] = float(np.mean(queries))
        return {**record, "validation": validation, "tests": per_task}


def _teacher(config: MetaTrainConfig, spec: TaskSpec) -> Teacher | None:
    """The hand-designed learner distilled from (`config.teacher`); None: the labels are the targets."""
    if not config.teacher:
        return None
    try:
        learner = make_learner(config.teacher)
        params = learner.init_meta_params(keys.init(config.seed), spec)
    except (ValueError, TypeError) as err:
        raise ValueError(f"teacher {config.teacher!r}: {err}") from None
    if jax.tree.leaves(params):
        raise ValueError(f"teacher {config.teacher!r} has meta-parameters, which would be a random initialisation "
                         f"here; a teacher is a hand-designed learner (class_mean, sgd:lr=..., adam:lr=..., knn, "
                         f"slda).")
    if config.teacher_level == "connections":
        check_imitation(config.outer.wrap(make_learner(config.learner)), learner, config.inner_batch)
    return Teacher(learner, params, config.teacher_temperature, config.teacher_level)


def _load(specs: Sequence[str], split: str, role: str) -> tuple[Task, ...]:
    """One split of each spec's tasks; an error names the role the spec was given for."""
    tasks = []
    for spec in specs:
        try:
            tasks.append(getattr(load_task(spec), split))
        except ValueError as err:
            raise type(err)(f"{role} task {spec!r}: {err}") from None  # same type: a missing dataset stays one
    return tuple(tasks)


def reference_scores(training: MetaTraining, params: PyTree) -> dict[str, dict]:
    """Meta-test scores of the algorithm at generation 0 ('untrained', or 'warm start' when the run began from
    another's meta-parameters) and of hand-designed learners on the same episodes."""
    cfg, key = training.config, training.eval_key
    scores = {"warm start" if cfg.init_from else "untrained": training.evaluate_all(params)}
    for spec in ("sgd", "class_mean"):
        baseline = make_learner(spec)
        run = jax.jit(lambda t: evaluate(baseline, {}, t, key, cfg.eval_episodes, cfg.episode_length))
        scores[spec] = {task.name: summary(run(task)) for task in training.test_tasks}
    return scores


def _start(training: MetaTraining, run_dir: Path, resume: bool, resume_from: int | None) -> RunState:
    """The state to continue from: a restored checkpoint (the last, or `resume_from`, dropping the later
    ones), or a fresh one; a fresh start clears checkpoints of an earlier run, so `best/` is this run's."""
    steps = checkpoint.saved_steps(run_dir) if resume else []
    restoring = bool(steps) or resume_from is not None
    main, state = distributed.is_main(), training.init(warm=not restoring)  # a resumed run is not warm-started again
    if restoring:
        step = checkpoint.resume_step(run_dir, steps, resume_from)
        state = replicate(checkpoint.restore(run_dir, step, state, steps), training.mesh)
        if any(s > step for s in steps):  # every process: an orbax manager is a collective with several
            checkpoint.discard_after(run_dir, step)
        if main:
            rewrite_metrics(run_dir / "metrics.jsonl", step)
    elif main:
        for kind in (checkpoint.LATEST, checkpoint.BEST):
            shutil.rmtree(run_dir / kind, ignore_errors=True)
    return state


def meta_train(training: MetaTraining, run_dir: Path, resume: bool = False, progress: bool = True,
               resume_from: int | None = None, command: str | None = None) -> RunState:
    """Run (or resume) meta-training into `run_dir`; returns the final state.

    Files: run.json (config, task shape, `command`: the command line that started the run, environment);
    metrics.jsonl (one line per generation; evaluation lines add val_score, test_score, test_acc,
    test_acc_last20 and per-task scores); training.png (fitness, validation and meta-test scores);
    baselines.json (the algorithm at generation 0, online SGD and nearest class mean on the evaluation episodes);
    checkpoints/ (orbax, every `checkpoint_every` generations and at the end, the last 3 kept); best/ (the
    checkpoint with the highest val_score so far: chosen on validation tasks, never on meta-test ones).

    Process 0 holds `run_dir`'s lock (metalearn.training.runlock) throughout. SIGTERM / SIGINT end the current
    generation, save a checkpoint and raise `Interrupted`; a non-finite update saves the last finite state
    and raises `guards.GuardError`.

    With several processes (metalearn.training.distributed) every process runs this loop in step, computing the same
    replicated numbers; only process 0 writes run.json, metrics.jsonl, baselines.json and the plot, and every
    process takes part in each orbax checkpoint save (orbax writes replicated arrays once and synchronizes the
    processes itself), so `run_dir` must be one shared directory.
    """
    run_dir = Path(run_dir)
    with runlock.hold(run_dir) if distributed.is_main() else contextlib.nullcontext():
        return _train(training, run_dir, _start(training, run_dir, resume, resume_from), progress, command)


def _train(training: MetaTraining, run_dir: Path, state: RunState, progress: bool, command: str | None) -> RunState:
    from tqdm import tqdm

    config, mesh, main = training.config, training.mesh, distributed.is_main()
    metrics_path = run_dir / "metrics.jsonl"
    best = -1.0
    if main:
        best = max((r["val_score"] for r in read_metrics(run_dir) if "val_score" in r), default=-1.0)
    best = distributed.broadcast_float(best)  # every process must take the same best-checkpoint decisions
    start = int(state.generation)
    if start == 0:
        scores = reference_scores(training, state.es.params)  # every process: computations on global arrays
        if main:
            metrics_path.unlink(missing_ok=True)
            write_run_info(run_dir, config, training.spec, mesh.devices.size, command)
            (run_dir / "baselines.json").write_text(json.dumps(scores, indent=1))
    if start < config.generations:
        guards.check_generation_budget(training, state)

    bar = tqdm(range(start, config.generations), initial=start, total=config.generations, disable=not (progress and main),
               unit="gen", dynamic_ncols=True, mininterval=1.0)
    last_eval = {}
    with StopOnSignal() as stop, metrics_path.open("a") if main else contextlib.nullcontext() as log:
        for index in bar:
            tic = time.perf_counter()
            state, metrics = training.generation_step(state, training.train_tasks)
            generation = index + 1
            metrics = jax.device_get(stop.wait(metrics))  # one transfer after the device is done: time after it
            if int(state.generation) == index:  # guards.keep_if_finite kept the last finite state
                _stop_non_finite(run_dir, index, state, config)
            record = {"generation": generation, "train_fitness": float(metrics.fitness.mean()),
                      "train_acc": float(metrics.accuracy.mean()), "grad_norm": float(metrics.grad_norm),
                      "seconds": time.perf_counter() - tic}
            if generation % config.eval_every == 0 or generation == config.generations:
                record.update(training.evaluate_all(state.es.params))
                last_eval = {k: record[k] for k in ("val_score", "test_score")}
            if main:
                log.write(json.dumps(record) + "\n")
                log.flush()
            if record.get("val_score", -1.0) > best:
                best = record["val_score"]
                checkpoint.save(run_dir, generation, state, config, kind=checkpoint.BEST)
            signum = stop.requested()
            if signum or generation % config.checkpoint_every == 0 or generation == config.generations:
                checkpoint.save(run_dir, generation, state, config)
            if signum:
                raise Interrupted(signum, generation)
            bar.set_postfix(fitness=f"{record['train_fitness']:.3f}", train_acc=f"{record['train_acc']:.2f}",
                            **{k: f"{v:.3f}" for k, v in last_eval.items()})
    if main:
        plot_training(run_dir)
    return state


def _stop_non_finite(run_dir: Path, generation: int, state: RunState, config: MetaTrainConfig) -> None:
    if generation:
        checkpoint.save(run_dir, generation, state, config)
    outer = ", ".join(f"{k}={v}" for k, v in config.flat().items() if k in ("lr", "outer", "sigma", "truncation"))
    raise guards.GuardError(f"generation {generation + 1} produced non-finite fitness or meta-parameters ({outer}); "
                            f"the run stopped" + (f" with generation {generation} saved" if generation else "")
                            + ". Lower --lr (or --sigma with ES) and start again.")
