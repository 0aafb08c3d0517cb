"""Meta-test evaluation: how a learner learns online on fresh episodes of a task it may never have seen."""

from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P

from metalearn.learners.base import Learner, PyTree, TaskSpec
from metalearn.outer.base import AXIS
from metalearn.outer.chunking import episodes_per_kernel
from metalearn.rollout.inner_loop import final_part, run_episode
from tasks import Task

Z95 = 1.96  # normal quantile of a two-sided 95% interval


class Evaluation(NamedTuple):
    """Online scores over `episodes` episodes: curves per inner step, and their episode averages."""

    acc_curve: chex.Array  # [T] mean accuracy at each step
    acc_curve_ci: chex.Array  # [T] half-width of the 95% interval over episodes
    loss_curve: chex.Array  # [T]
    loss_curve_ci: chex.Array  # [T]
    acc: chex.Array  # accuracy averaged over whole episodes
    acc_last20: chex.Array  # ... over their last 20% of steps
    loss: chex.Array
    acc_ci: chex.Array  # 95% interval of `acc` over episodes
    query_acc: chex.Array  # accuracy on steps without feedback (a query phase); NaN when there are none


def _mean_ci(values: chex.Array) -> tuple[chex.Array, chex.Array]:
    n = values.shape[0]
    return values.mean(0), Z95 * values.std(0) / jnp.sqrt(max(n - 1, 1))


def evaluate(learner: Learner, meta_params: PyTree, task: Task, key: chex.PRNGKey, episodes: int,
             length: int, batch: int = 1, mesh: Mesh | None = None, chunk: int | None = None) -> Evaluation:
    """Run `learner` on `episodes` episodes drawn from `key`, `batch` examples per inner step (pure and
    jit-able; the same key gives the same episodes to every learner, so learners are compared on identical
    data). With `mesh` every device samples and runs its share of the episodes, `chunk` at a time (None: as
    many as fit the device's budget for this task's shape, `chunking.episodes_per_kernel`; 0: all at once),
    as the ES population is run: the same scores up to float rounding, without one device doing all the
    work. The arguments must then be host arrays or arrays on the mesh, not on one of its devices."""
    if mesh is not None and chunk is None:
        spec = TaskSpec.of(task, length)
        chunk = episodes_per_kernel(learner, spec, episodes, mesh.devices.size, batch)
    sample_keys, state_keys = jnp.split(jax.random.split(key, 2 * episodes), 2)

    def one(params, data, sample_key, state_key):
        episode = data.sample(sample_key, length)
        return run_episode(learner, params, state_key, episode, task.num_classes, batch), episode.feedback_mask

    result, feedback_mask = _run_all(one, (meta_params, task), sample_keys, state_keys, mesh, chunk)
    correct = result.correct.astype(jnp.float32)
    acc_curve, acc_curve_ci = _mean_ci(correct)
    loss_curve, loss_curve_ci = _mean_ci(result.loss)
    query = ~feedback_mask
    query_acc = jnp.where(query.any(), (correct * query).sum() / jnp.maximum(query.sum(), 1), jnp.nan)
    return Evaluation(acc_curve, acc_curve_ci, loss_curve, loss_curve_ci, correct.mean(),
                      final_part(correct).mean(), result.loss.mean(), _mean_ci(correct.mean(1))[1], query_acc)


def _run_all(one, shared: tuple, sample_keys: chex.Array, state_keys: chex.Array, mesh: Mesh | None,
             chunk: int) -> PyTree:
    """`one(*shared, sample_key, state_key)` for every pair of keys: one vmap, or split over the mesh's
    devices (the keys padded by repeats to a multiple of the devices, the repeats dropped) and gathered.
    `shared` (meta-parameters, the task's data) goes to every device whole."""
    count = sample_keys.shape[0]
    in_axes = (None,) * len(shared) + (0, 0)
    if mesh is None:
        return jax.vmap(one, in_axes)(*shared, sample_keys, state_keys)
    padded = -(-count // mesh.devices.size) * mesh.devices.size
    if padded > count:
        sample_keys, state_keys = (k[jnp.arange(padded) % count] for k in (sample_keys, state_keys))

    def block(block_shared, block_sample_keys, block_state_keys):
        if chunk:
            out = jax.lax.map(lambda k: one(*block_shared, *k), (block_sample_keys, block_state_keys),
                              batch_size=chunk)
        else:
            out = jax.vmap(one, in_axes)(*block_shared, block_sample_keys, block_state_keys)
        return jax.lax.all_gather(out, AXIS, tiled=True)

    # check_vma=False as in ES: the episode scans start from device-invariant zeros; the gather replicates
    out = jax.shard_map(block, mesh=mesh, in_specs=(P(), P(AXIS), P(AXIS)), out_specs=P(), check_vma=False)(
        shared, sample_keys, state_keys)
    return jax.tree.map(lambda x: x[:count], out)


def summary(evaluation: Evaluation) -> dict[str, float | None]:
    """The scalar part as plain floats for JSON and tables, headed by `score`, the one number a task is
    judged by: query-phase accuracy where there is a query phase (a stream), whole-episode online accuracy
    otherwise. query_acc is None without a query phase."""
    keys = ("acc", "acc_last20", "loss", "acc_ci", "query_acc")
    values = {k: float(getattr(evaluation, k)) for k in keys}
    values = {k: None if math.isnan(v) else v for k, v in values.items()}
    return {"score": values["acc"] if values["query_acc"] is None else values["query_acc"], **values}
