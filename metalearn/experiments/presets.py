"""Built-in sweeps (`launch/sweep.py run --preset NAME`); `launch/sweep.py show NAME` prints one as JSON.

cpu: 7x7 MNIST (4x4 average pooling), 100-step 10-way episodes, one core per point; 65 minutes on 2
idle cores with the tied low-rank point it had then (measured). The headline comparison (VSML vs meta-RNNs, unbounded tasks) and the task axis run at 3 seeds.
axis: the algorithm-size / state-size axis inside one architecture under one outer optimizer: VSML with
`groups=G` (algorithm x G at a fixed state) and with a hidden layer (more state for the same algorithm),
log10(algorithm / state) from -1.58 to +1.57, every point trained by the same ES budget, once from a fresh
start and once warm, from the shipped `pretrained/vsml-mnist7`; see `AXIS`.
paper: VSML's published scale (28x28, population 1024, 500-step episodes, sigma 0.05, Adam 0.025) for a
multi-GPU machine; its cost is estimated in README from bench/throughput.py. Its tied low-rank point
(lowrank:units=4096,groups=16) was removed with that variant, whose effective state was ~2 x groups floats
(issue 17); the middle of the algorithm/state axis is for VSML's `groups` option to cover.
"""

from __future__ import annotations

# Backprop through the episode for the meta-RNNs: a large batch of episodes gets them off the loss plateau
# at chance (after about 500 steps for 64 units, measured); ES did not move them off chance (REFERENCES.md).
_BACKPROP = {"lr": 0.003, "episodes_per_member": 128, "generations": 2000, "eval_every": 500,
             "checkpoint_every": 250}
_ES = {"population": 128, "sigma": 0.05, "lr": 0.025, "eval_every": 50, "checkpoint_every": 25}
_BASELINES = {
    "sgd": [f"sgd:lr={lr}" for lr in (0.01, 0.03, 0.1, 0.3, 1.0)],
    "adam": [f"adam:lr={lr}" for lr in (0.001, 0.003, 0.01, 0.03, 0.1)],
    "class_mean": ["class_mean"],
}


def _unseen(resize: int, per_class: int) -> dict:
    size = f"resize={resize}" if resize else "resize=0"
    return {"MNIST": f"mnist:{size}", "Fashion-MNIST": f"fashion_mnist:{size}", "KMNIST": f"kmnist:{size}",
            "OrderedMNIST": f"ordered:mnist:{size},per_class={per_class},queries=100"}


def _task_levels(resize: int, counts: tuple[int, ...], projection: int) -> list[dict]:
    """Fixed label permutations (few tasks) up to a fresh one per episode, then a fresh random input
    projection as well (the most diverse distribution)."""
    base = f"mnist:resize={resize}"
    levels = [{"label": str(n), "count": n, "spec": f"{base},permutations={n}"} for n in counts]
    return levels + [{"label": "unbounded", "count": 0, "spec": base},
                     {"label": "unbounded+proj", "count": 0, "spec": f"{base},project={projection}"}]


CPU = {
    "name": "cpu",
    "base": {"episode_length": 100, "eval_episodes": 64},
    "learners": [
        {"label": "vsml", "learner": "vsml", "outer": "es", "overrides": {**_ES, "generations": 300}},
        {"label": "meta_rnn16", "learner": "meta_rnn:hidden=16", "outer": "backprop", "overrides": _BACKPROP},
        {"label": "meta_rnn64", "learner": "meta_rnn:hidden=64", "outer": "backprop", "overrides": _BACKPROP},
    ],
    "tasks": _task_levels(7, (4, 64), 49),
    "blocks": [
        {"learners": ["vsml"], "tasks": ["4", "unbounded"]},
        {"learners": ["meta_rnn64"], "tasks": ["4", "64", "unbounded", "unbounded+proj"]},
        {"learners": ["meta_rnn16"], "tasks": ["unbounded"]},
    ],
    "seeds": [0, 1, 2],
    "unseen": _unseen(7, 10),
    "baselines": _BASELINES,
    "eval_episodes": 64,
}

# Same ES budget for every point: population 64 x 100 generations x one 100-step episode per member. Measured
# on 2 idle cores (seconds per generation): hidden=48 4.4, hidden=16 1.8, G=1 0.7, G=245 3.2. The 70 points
# finished by session 8 (63 ES, 7 backprop) took 11.8 h of one-core training time on cores shared with other
# jobs: more than the 3 h on 2 cores, so the preset spans sessions (it resumes).
_AXIS_ES = {**_ES, "population": 64, "generations": 100}
# log10(algorithm / state) at 7x7 -> 10: hidden=48 -1.58, hidden=16 -1.10, G=1 -0.82, G=10 +0.18 (one LSTM per
# output unit), G=49 +0.87 (one per input pixel), G=245 +1.57 (pairs of connections of one output unit).
_AXIS_POINTS = {"vsml-h48": "vsml:hidden=48", "vsml-h16": "vsml:hidden=16", "vsml": "vsml",
                "vsml-g10": "vsml:groups=10", "vsml-g49": "vsml:groups=49", "vsml-g245": "vsml:groups=245"}

# Warm points: the same ES budget from the shipped one-group VSML meta-trained on 7x7 MNIST (every group a
# copy of it, so each point starts as the same learner): from a fresh start only G = 1 left chance at this
# budget, so the fresh block measures where ES stops finding a learner, the warm block what ES does with
# more algorithm (or more state) once it has one. Relative to the repository root, where sweeps are run.
_WARM_FROM = "pretrained/vsml-mnist7"
# The same two warm ends trained by backprop through the episode, whose exact per-group gradient does not
# degrade with G as the ES estimate does: 16 episodes per step, 100 steps (8 s per step for G = 245 on the
# shared cores, measured; 1,600 episodes against ES's 6,400 member-episodes, each about 3x the cost).
_AXIS_BACKPROP = {"lr": 0.001, "episodes_per_member": 16, "generations": 100, "eval_every": 50,
                  "checkpoint_every": 25}
_WARM = {f"{label}-warm": spec for label, spec in _AXIS_POINTS.items()}

AXIS = {
    "name": "axis",
    "base": {"episode_length": 100, "eval_episodes": 64},
    "learners": [{"label": label, "learner": spec, "outer": "es", "overrides": _AXIS_ES}
                 for label, spec in _AXIS_POINTS.items()]
                + [{"label": label, "learner": spec, "outer": "es", "overrides": {**_AXIS_ES, "init_from": _WARM_FROM}}
                   for label, spec in _WARM.items()]
                + [{"label": "vsml-g245-warm-r4", "learner": "vsml:groups=245", "outer": "es",  # rank-4 noise
                    "overrides": {**_AXIS_ES, "init_from": _WARM_FROM, "noise_rank": 4}}]
                + [{"label": f"{label}-bp", "learner": _WARM[label], "outer": "backprop",
                    "overrides": {**_AXIS_BACKPROP, "init_from": _WARM_FROM}} for label in ("vsml-warm", "vsml-g245-warm")],
    "tasks": _task_levels(7, (4, 64), 49)[:3],
    # The task axis crosses the warm points (the fresh ones at both ends stayed at chance, so they have
    # nothing to memorize): the two ends and the middle, 4 and 64 fixed tasks; and G = 1, the one point of
    # the state side that is a learner from its warm start (the hidden-layer ones are not).
    "blocks": [
        {"learners": list(_AXIS_POINTS), "tasks": ["unbounded"]},
        {"learners": ["vsml-warm", "vsml-g10-warm", "vsml-g49-warm", "vsml-g245-warm"], "tasks": ["unbounded"]},
        {"learners": ["vsml-g245-warm", "vsml-g10-warm", "vsml-h48-warm"], "tasks": ["4", "64"]},
        {"learners": ["vsml-h16-warm", "vsml-h48-warm"], "tasks": ["unbounded"]},
        {"learners": ["vsml-g245-warm-r4"], "tasks": ["unbounded"]},
        {"learners": ["vsml-warm-bp", "vsml-g245-warm-bp"], "tasks": ["4", "unbounded"]},
        {"learners": ["vsml-warm"], "tasks": ["4", "64"]},
    ],
    "seeds": [0, 1, 2],
    # Unseen: new images of MNIST under new label permutations, other datasets, an input transform no point
    # saw (a random 49x49 projection per task) and the class-ordered stream. Other resolutions and class
    # subsets are left out: a group's parameters are tied to input and output positions, so G > 1 would
    # meet a different grid there.
    "unseen": {**_unseen(7, 10), "MNIST-proj": "mnist:resize=7,project=49"},
    "baselines": _BASELINES,
    "eval_episodes": 64,
}

PAPER = {
    "name": "paper",
    "base": {"episode_length": 500, "eval_episodes": 128},
    "learners": [
        {"label": "vsml", "learner": "vsml", "outer": "es",
         "overrides": {**_ES, "population": 1024, "generations": 10000, "eval_every": 250, "checkpoint_every": 50,
                       "chunk": 32}},
        {"label": "meta_rnn128", "learner": "meta_rnn:hidden=128", "outer": "backprop",
         "overrides": {**_BACKPROP, "generations": 20000, "eval_every": 1000}},
        {"label": "meta_rnn512", "learner": "meta_rnn:hidden=512", "outer": "backprop",
         "overrides": {**_BACKPROP, "generations": 20000, "eval_every": 1000}},
    ],
    "tasks": _task_levels(0, (4, 64, 1024), 784),
    "blocks": [
        {"learners": ["vsml", "meta_rnn128"], "tasks": ["4", "64", "1024", "unbounded", "unbounded+proj"]},
        {"learners": ["meta_rnn512"], "tasks": ["unbounded"]},
    ],
    "seeds": [0, 1, 2],
    "unseen": _unseen(0, 20),
    "baselines": _BASELINES,
    "eval_episodes": 128,
}

PRESETS = {"cpu": CPU, "axis": AXIS, "paper": PAPER}
