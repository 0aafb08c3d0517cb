"""The learner interface shared by learned and hand-designed learning algorithms.

A learner is a frozen (hashable, by-value) dataclass of hyper-parameters with three pure methods:

- `init_meta_params(key, spec)` -> the *algorithm*: parameters shared by every task (empty for
  hand-designed learners);
- `init_state(meta_params, key, spec)` -> the *learnable state* of one task (fast weights, LSTM states,
  stored examples); `spec.episode_length` says how many examples the episode brings (kNN keeps them all);
- `step(meta_params, state, x, feedback)` -> (state, logits): first absorb the feedback for the previous
  prediction, then predict the label of `x`;
- `merge(states)` -> states: the rule for an inner batch, B state copies (leading axis B) that each learnt
  from their own example, merged into one state broadcast back to B copies (`MeanMerge`: the average).

Feedback arrives one step late because the inner loop predicts, is scored, and only then reveals the
answer. A zero feedback (as at t=0 or in a query phase) carries no information and must leave a
hand-designed learner unchanged.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, ClassVar, NamedTuple, Protocol

import chex
import jax
import jax.numpy as jnp

from metalearn.learners.lstm import builtin_tanh

PyTree = Any


class TaskSpec(NamedTuple):
    """The shapes a learner is built for, and the length of the episodes its state lives through (only
    the state may depend on it: meta-parameters must fit every length)."""

    input_size: int
    num_classes: int
    episode_length: int = 100  # examples per episode (the inner loop sets the real one)

    @classmethod
    def of(cls, task: Any, length: int) -> "TaskSpec":
        """The spec of `task` (a `tasks.Task`) run for `length` steps (a stream sets its own length)."""
        return cls(task.input_size, task.num_classes, task.episode_length(length))


class Feedback(NamedTuple):
    """What the learner is told after a prediction: error = softmax(logits) - onehot(label)."""

    error: chex.Array  # [num_classes]
    label: chex.Array  # [num_classes] one-hot

    @classmethod
    def zeros(cls, num_classes: int) -> "Feedback":
        return cls(jnp.zeros((num_classes,)), jnp.zeros((num_classes,)))

    @classmethod
    def from_prediction(cls, logits: chex.Array, label: chex.Array, given: chex.Array) -> "Feedback":
        """Feedback for one prediction; all zeros where `given` is False (no feedback this step)."""
        onehot = jax.nn.one_hot(label, logits.shape[-1])
        error = jax.nn.softmax(logits) - onehot
        given = jnp.asarray(given)[..., None]
        return cls(jnp.where(given, error, 0.0), jnp.where(given, onehot, 0.0))


class Learner(Protocol):
    """Structural type of every learner (see module docstring)."""

    def init_meta_params(self, key: chex.PRNGKey, spec: TaskSpec) -> PyTree: ...

    def init_state(self, meta_params: PyTree, key: chex.PRNGKey, spec: TaskSpec) -> PyTree: ...

    def step(
        self, meta_params: PyTree, state: PyTree, x: chex.Array, feedback: Feedback
    ) -> tuple[PyTree, chex.Array]: ...

    def merge(self, states: PyTree) -> PyTree: ...


def average_states(states: PyTree, keep: tuple[str, ...] = ()) -> PyTree:
    """Average the float leaves of B state copies over the batch axis, except entries named in `keep`
    (what one copy last saw) and non-float leaves (counters), which stay per copy."""
    def merge(path, leaf):
        if any(getattr(k, "key", None) in keep for k in path) or not jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf
        return jnp.broadcast_to(leaf.mean(0), leaf.shape)

    return jax.tree_util.tree_map_with_path(merge, states)


class MeanMerge:
    """Inner batches average the state copies (for online SGD: minibatch SGD), keeping `per_example`."""

    per_example: ClassVar[tuple[str, ...]] = ("x_prev",)

    def merge(self, states: PyTree) -> PyTree:
        return average_states(states, self.per_example)


class NoMerge:
    """Learners whose state is a memory or a set of statistics that averaging copies would corrupt."""

    def merge(self, states: PyTree) -> PyTree:
        raise ValueError(f"{self.name} keeps per-example memory or statistics that averaging state copies would "
                         f"destroy; use an inner batch of 1 with it")


def tree_size(tree: PyTree) -> int:
    """Number of scalars in a pytree of arrays or ShapeDtypeStructs."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def tree_bytes(tree: PyTree) -> int:
    return sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


class Sizes(NamedTuple):
    """Algorithm size vs learnable-state size: two of the four axes learners are compared on."""

    algorithm: int  # meta-parameter count
    algorithm_bytes: int
    state: int  # learnable-state floats per task
    state_bytes: int


def learner_sizes(learner: Learner, spec: TaskSpec) -> Sizes:
    """Sizes read off the real pytrees (shape-only evaluation, nothing is computed)."""
    key = jax.random.key(0)
    meta = jax.eval_shape(lambda k: learner.init_meta_params(k, spec), key)
    state = jax.eval_shape(lambda m, k: learner.init_state(m, k, spec), meta, key)
    return Sizes(tree_size(meta), tree_bytes(meta), tree_size(state), tree_bytes(state))


@functools.cache  # a compile per call: the banner and the generation guard ask for the same learner
def step_flops(learner: Learner, spec: TaskSpec) -> float:
    """FLOPs of one inner step (one example, one task) from XLA's cost analysis of the compiled step, each
    LSTM tanh counted as XLA's one op (`lstm.builtin_tanh`)."""
    key = jax.random.key(0)
    meta = learner.init_meta_params(key, spec)
    state = learner.init_state(meta, key, spec)
    with builtin_tanh():  # a fresh function: no cached trace of the other tanh is reused
        step = jax.jit(lambda *args: learner.step(*args))
        return compiled_flops(step.lower(meta, state, jnp.zeros(spec.input_size), Feedback.zeros(spec.num_classes)).compile())


def compiled_flops(compiled) -> float:
    """FLOPs of a compiled function: XLA's cost analysis (a loop body counts once, whatever its trip count)
    plus the LAPACK calls it cannot see into (`library_flops`)."""
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis.get("flops", 0.0)) + library_flops(compiled)[0]


# XLA's cost analysis sees no FLOPs inside library calls; the standard counts of the LAPACK routines JAX uses
# for linear algebra on CPU (n: the triangular matrix's side; shapes: the operands'), batched leading dims.
LIBRARY_FLOPS = {"potrf": lambda a: math.prod(a) * a[-1] / 3, "trsm": lambda a, b: math.prod(b) * a[-1]}
_LIBRARY_CALL = re.compile(r'custom_call_target="([^"]+)", operand_layout_constraints=\{(.*?)\}, [a-z_]+=')


def library_flops(compiled) -> tuple[float, list[str]]:
    """FLOPs of the LAPACK calls in a compiled function (a loop body once), and any other library calls."""
    text = compiled.as_text()
    total = 0.0
    for target, operands in _LIBRARY_CALL.findall(text):
        routine = next((name for name in LIBRARY_FLOPS if name in target), None)
        if routine is not None:
            shapes = [tuple(map(int, filter(None, d.split(",")))) for d in re.findall(r"\w+\[([\d,]*)\]", operands)]
            total += LIBRARY_FLOPS[routine](*shapes)
    targets = re.findall(r'custom_call_target="([^"]+)"', text)
    return total, [t for t in targets if not any(name in t for name in LIBRARY_FLOPS)]


def check_task_fits(learner: Learner, meta_params: PyTree, task) -> None:
    """Raise a clear ValueError if `meta_params` do not have the shapes `learner` needs on `task`.

    VSML's meta-parameters fit any input and output size; a meta-RNN's are tied to the shapes it was
    meta-trained on."""
    spec = TaskSpec(task.input_size, task.num_classes)  # meta-parameters do not depend on the length
    expected = jax.eval_shape(lambda k: learner.init_meta_params(k, spec), jax.random.key(0))
    shapes = lambda tree: jax.tree.map(lambda x: tuple(x.shape), tree)  # noqa: E731
    if shapes(expected) != shapes(meta_params):
        raise ValueError(f"task {task.name!r} ({spec.input_size} inputs, {spec.num_classes} classes) does not fit "
                         f"these {learner.name} meta-parameters, which were made for other shapes; give the task "
                         f"the meta-training shape with the dim= and num_classes= task options.")
