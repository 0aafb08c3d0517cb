"""The meta-training configuration: one frozen dataclass, saved as JSON in every checkpoint.

The outer optimizer's own settings live in its nested config (`outer`: `ESConfig`, `BackpropConfig`, ...),
chosen by name from `metalearn.outer.OUTER`. Configs written before that nesting (flat `outer`,
`population`, `sigma`, `chunk`, `truncation` keys) still load: `from_flat` builds the nested form.
"""

from __future__ import annotations

import dataclasses
import json
import math

from metalearn.outer import OUTER, OuterConfig, outer_fields
from metalearn.outer.es import ESConfig

TEACHER_LEVELS = ("logits", "connections")


@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
    # learner spec, e.g. 'vsml:ticks=1,hidden=32'. The default, VSML's one sweep per step (the reference's), learns
    # digits as well as the backward-then-forward `vsml` at half the cost per member-step (README, "The learning
    # effect"); on MNIST 7x7 it is behind `vsml` at equal generations and ahead at equal time (bench/README.md).
    learner: str = "vsml:single_pass=true"
    train_tasks: tuple[str, ...] = ("digits",)  # task specs meta-trained on (their train splits)
    test_tasks: tuple[str, ...] = ("digits",)  # task specs meta-tested on (their test splits)
    val_tasks: tuple[str, ...] = ()  # task specs validated on (their validation slices; empty: train_tasks')
    outer: OuterConfig = ESConfig()  # the outer optimizer and its settings (ESConfig, BackpropConfig)
    lr: float = 0.05  # Adam learning rate on the outer gradient (an ES estimate or backprop's)
    generations: int = 200  # outer steps; the default run (ES, population 256): about 4 minutes on 2 idle cores (README)
    episode_length: int = 100  # inner-loop steps per episode
    inner_batch: int = 1  # examples per inner step; B > 1 merges B state copies after each step (learner.merge)
    episodes_per_member: int = 1  # episodes per task each outer step scores (ES: shared by the population)
    eval_every: int = 25  # generations between meta-test evaluations
    eval_episodes: int = 64  # fixed meta-test episodes (same keys every evaluation)
    checkpoint_every: int = 25  # generations between checkpoints (and one at the end)
    seed: int = 0
    init_from: str = dataclasses.field(default="", metadata={
        "help": "warm start: a run dir or pretrained folder whose meta-parameters begin the run"})
    teacher: str = dataclasses.field(default="", metadata={
        "help": "distillation: a learner spec (e.g. class_mean) whose online predictions replace the labels "
                "as the fitness targets"})
    teacher_temperature: float = dataclasses.field(default=1.0, metadata={
        "help": "the teacher's logits are divided by this before the softmax"})
    teacher_level: str = dataclasses.field(default="logits", metadata={
        "help": "logits: distil the teacher's predictions; connections: fit each connection of a one-layer VSML "
                "to class_mean's per-connection term (a warm start by backprop)"})

    def __post_init__(self):
        positive = ("generations", "episode_length", "inner_batch", "episodes_per_member", "eval_every",
                    "eval_episodes", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if type(self.outer) not in OUTER.values():
            raise ValueError(f"outer must be one of the configs of {sorted(OUTER)} (metalearn.outer.OUTER), "
                             f"got {self.outer!r}")
        if not self.train_tasks or not self.test_tasks:
            raise ValueError("give at least one meta-training and one meta-test task")
        if not 0 < self.lr < math.inf:
            raise ValueError(f"lr must be positive and finite, got lr={self.lr}")
        if not 0 < self.teacher_temperature < math.inf:
            raise ValueError(f"teacher_temperature must be positive and finite, got {self.teacher_temperature}")
        if self.teacher_level not in TEACHER_LEVELS:
            raise ValueError(f"teacher_level must be one of {', '.join(TEACHER_LEVELS)}, got {self.teacher_level!r}")

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "outer": {"name": self.outer.name, **dataclasses.asdict(self.outer)}}

    @classmethod
    def from_json(cls, data: dict) -> "MetaTrainConfig":
        if isinstance(data.get("outer", "es"), str):  # written before the outer config was nested
            return cls.from_flat(data, legacy=True)
        outer = dict(data["outer"])
        name = outer.pop("name", None)
        outer_fields(name)  # a clear error for an unknown optimizer
        data = {**data, "outer": OUTER[name](**outer)}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"config has unknown keys {sorted(unknown)}; was it written by a newer metalearn?")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def from_flat(cls, fields: dict, legacy: bool = False) -> "MetaTrainConfig":
        """A config from flat fields: `outer` names the optimizer (default 'es') and its settings sit
        beside the others (`population=...`), as in sweep configs and configs written before nesting.
        Settings of other optimizers are an error, except in `legacy` JSON (which always held them all)."""
        fields = dict(fields)
        name = fields.pop("outer", "es")
        mine = {k: fields.pop(k) for k in outer_fields(name) if k in fields}
        others = {k for n in OUTER for k in outer_fields(n)} & set(fields)
        if others and not legacy:
            raise ValueError(f"{sorted(others)} are settings of another outer optimizer, not of {name!r} "
                             f"(whose settings are {sorted(outer_fields(name))}); drop them or change outer.")
        fields = {k: v for k, v in fields.items() if k not in others}
        return cls.from_json({**fields, "outer": {"name": name, **mine}})

    def flat(self) -> dict:
        """The fields as `from_flat` reads them: the outer optimizer by name, its settings beside the rest."""
        data = self.to_json()
        outer = data.pop("outer")
        return {**data, "outer": outer.pop("name"), **outer}

    def replace(self, **changes) -> "MetaTrainConfig":
        return dataclasses.replace(self, **changes)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)
