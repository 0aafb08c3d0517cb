"""Meta-training: task sampler -> inner loop -> fitness -> seed-shared ES gradient -> optax -> checkpoint.

`MetaTraining` wires the pieces for one config and device mesh and exposes jitted, pure functions; the
loop in `meta_train` owns the side effects (metrics file, checkpoints, progress bar).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from metalearn import checkpoint, es
from metalearn.config import MetaTrainConfig
from metalearn.evaluation import Evaluation, evaluate
from metalearn.inner_loop import run_episode
from metalearn.learners import Learner, TaskSpec, make_learner
from metalearn.learners.base import PyTree
from metalearn.report import plot_training
from metalearn.run import write_run_info
from tasks import Task, TaskSplit, load_task

EVAL_KEY = 1  # fold-in constant: the meta-test episodes are the same at every evaluation of a run


class RunState(NamedTuple):
    """Everything a checkpoint holds besides the config."""

    es: es.ESState
    generation: chex.Array  # completed generations
    key: chex.Array  # raw key data of the run key; generation g uses fold_in(run key, g)


class MetaTraining:
    """One config on one mesh: the learner, its tasks and the jitted generation and evaluation steps."""

    def __init__(self, config: MetaTrainConfig, mesh: Mesh, tasks: TaskSplit | None = None):
        self.config, self.mesh = config, mesh
        self.learner = make_learner(config.learner)
        self.tasks = tasks or load_task(config.task)
        self.spec = TaskSpec(self.tasks.train.input_size, self.tasks.train.num_classes)
        self.optimizer = optax.adam(config.lr)
        self._es_step = es.make_es_step(self._fitness, self.optimizer, mesh, config.population,
                                        config.chunk)
        self.generation_step: Callable[[RunState, Task], tuple[RunState, es.ESMetrics]] = jax.jit(
            self._generation, donate_argnums=0)
        self.evaluate: Callable[[PyTree, Task], Evaluation] = jax.jit(self._evaluate)

    def init(self) -> RunState:
        key = jax.random.key(self.config.seed)
        params = self.learner.init_meta_params(jax.random.fold_in(key, 0), self.spec)
        state = RunState(es.ESState(params, self.optimizer.init(params)), jnp.int32(0), jax.random.key_data(key))
        return es.replicate(state, self.mesh)

    def _fitness(self, params: PyTree, data: tuple) -> tuple[chex.Array, chex.Array]:
        """Mean cross-entropy (to minimise) and accuracy of one member over this generation's episodes."""
        init_keys, episodes = data
        num_classes = self.spec.num_classes
        result = jax.vmap(lambda k, ep: run_episode(self.learner, params, k, ep, num_classes))(init_keys, episodes)
        return result.loss.mean(), result.correct.mean()

    def _generation(self, state: RunState, task: Task) -> tuple[RunState, es.ESMetrics]:
        cfg = self.config
        key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.generation)
        noise_key, task_key, init_key = jax.random.split(key, 3)
        episodes = jax.vmap(lambda k: task.sample(k, cfg.episode_length))(
            jax.random.split(task_key, cfg.episodes_per_member))
        data = (jax.random.split(init_key, cfg.episodes_per_member), episodes)
        new_es, metrics = self._es_step(state.es, noise_key, jnp.float32(cfg.sigma), data)
        return RunState(new_es, state.generation + 1, state.key), metrics

    def _evaluate(self, params: PyTree, task: Task) -> Evaluation:
        key = jax.random.fold_in(jax.random.key(self.config.seed), EVAL_KEY)
        return evaluate(self.learner, params, task, key, self.config.eval_episodes, self.config.episode_length)


def _evaluation_record(result: Evaluation) -> dict:
    return {"test_acc": float(result.acc), "test_acc_last20": float(result.acc_last20),
            "test_loss": float(result.loss)}


def _truncate_metrics(path: Path, generation: int) -> None:
    """Drop metric lines past `generation`: on resume they are recomputed, and must not appear twice."""
    if path.exists():
        lines = [line for line in path.read_text().splitlines()
                 if line.strip() and json.loads(line)["generation"] <= generation]
        path.write_text("".join(line + "\n" for line in lines))


def reference_scores(training: MetaTraining, params: PyTree) -> dict[str, dict]:
    """Meta-test scores of the untrained algorithm and of hand-designed learners on the same episodes."""
    task, cfg = training.tasks.test, training.config
    key = jax.random.fold_in(jax.random.key(cfg.seed), EVAL_KEY)
    scores = {"untrained": _evaluation_record(training.evaluate(params, task))}
    for spec in ("sgd", "class_mean"):
        baseline = make_learner(spec)
        result = jax.jit(lambda t: evaluate(baseline, {}, t, key, cfg.eval_episodes, cfg.episode_length))(task)
        scores[spec] = _evaluation_record(result)
    return scores


def meta_train(config: MetaTrainConfig, mesh: Mesh, run_dir: Path, resume: bool = False,
               progress: bool = True) -> RunState:
    """Run (or resume) meta-training into `run_dir`; returns the final state.

    Files: run.json (config, task shape, environment); metrics.jsonl (one line per generation; evaluation
    lines add test_acc and test_acc_last20); training.png (fitness and meta-test accuracy); baselines.json (untrained algorithm, online SGD and nearest class mean on the evaluation episodes),
    checkpoints/ (orbax, every `checkpoint_every` generations and at the end).
    """
    from tqdm import tqdm

    run_dir = Path(run_dir)
    training = MetaTraining(config, mesh)
    state = training.init()
    metrics_path = run_dir / "metrics.jsonl"
    if resume:
        steps = checkpoint.saved_steps(run_dir)
        if steps:
            state = es.replicate(checkpoint.restore(run_dir, steps[-1], state), mesh)
            _truncate_metrics(metrics_path, steps[-1])
    run_dir.mkdir(parents=True, exist_ok=True)
    start = int(state.generation)
    if start == 0:
        metrics_path.unlink(missing_ok=True)
        write_run_info(run_dir, config, training.spec, mesh.devices.size)
        (run_dir / "baselines.json").write_text(json.dumps(reference_scores(training, state.es.params), indent=1))

    bar = tqdm(range(start, config.generations), initial=start, total=config.generations, disable=not progress,
               unit="gen", dynamic_ncols=True, mininterval=1.0)
    last_eval = {}
    with metrics_path.open("a") as log:
        for _ in bar:
            tic = time.perf_counter()
            state, metrics = training.generation_step(state, training.tasks.train)
            generation = int(state.generation)
            record = {"generation": generation, "train_fitness": float(metrics.fitness.mean()),
                      "train_acc": float(metrics.accuracy.mean()), "grad_norm": float(metrics.grad_norm),
                      "seconds": time.perf_counter() - tic}
            if generation % config.eval_every == 0 or generation == config.generations:
                last_eval = _evaluation_record(training.evaluate(state.es.params, training.tasks.test))
                record.update(last_eval)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if generation % config.checkpoint_every == 0 or generation == config.generations:
                checkpoint.save(run_dir, generation, state, config)
            bar.set_postfix(fitness=f"{record['train_fitness']:.3f}", train_acc=f"{record['train_acc']:.2f}",
                            **{k: f"{v:.3f}" for k, v in last_eval.items() if k != "test_loss"})
    plot_training(run_dir)
    return state
