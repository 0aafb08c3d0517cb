"""The meta-training configuration: one frozen dataclass, saved as JSON in every checkpoint."""

from __future__ import annotations

import dataclasses
import json


@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
    learner: str = "vsml"  # learner spec, e.g. 'vsml:ticks=1,hidden=32'
    train_tasks: tuple[str, ...] = ("digits",)  # task specs meta-trained on (their train splits)
    test_tasks: tuple[str, ...] = ("digits",)  # task specs meta-tested on (their test splits)
    outer: str = "es"  # outer optimizer: 'es' (seed-shared OpenAI-ES) or 'backprop' (through the episode)
    truncation: int = 0  # backprop only: cut gradients every N inner steps (0: full backprop)
    population: int = 128  # ES members per generation (antithetic pairs: even, divisible by 2 x devices)
    sigma: float = 0.05  # ES noise std
    noise_rank: int = 0  # ES only: rank-r noise A B^T / sqrt(r) on matrix leaves (0: full-rank noise)
    lr: float = 0.025  # Adam learning rate on the ES gradient
    generations: int = 150  # under 5 minutes on 2 idle CPU cores (generation 125: test_acc_last20 0.77)
    episode_length: int = 100  # inner-loop steps per episode
    inner_batch: int = 1  # examples per inner step; B > 1 merges B state copies after each step (VSML's rule)
    episodes_per_member: int = 1  # episodes each member is scored on (shared by the whole population)
    eval_every: int = 25  # generations between meta-test evaluations
    eval_episodes: int = 64  # fixed meta-test episodes (same keys every evaluation)
    checkpoint_every: int = 25  # generations between checkpoints (and one at the end)
    chunk: int | str = "auto"  # antithetic pairs evaluated at once per device ('auto': fit the device; see
    # metalearn/chunking.py): bounds memory and sets speed, not the result
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.chunk, str) and self.chunk != "auto":
            if not self.chunk.isdigit():
                raise ValueError(f"chunk must be 'auto' or a positive number of pairs, got {self.chunk!r}")
            object.__setattr__(self, "chunk", int(self.chunk))  # from the command line
        positive = ("population", "generations", "episode_length", "inner_batch", "episodes_per_member", "eval_every",
                    "eval_episodes", "checkpoint_every") + (("chunk",) if self.chunk != "auto" else ())
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.outer not in ("es", "backprop"):
            raise ValueError(f"outer must be 'es' or 'backprop', got {self.outer!r}")
        if self.noise_rank < 0:
            raise ValueError(f"noise_rank must be >= 0 (0: full-rank noise), got {self.noise_rank}")
        if self.truncation < 0:
            raise ValueError(f"truncation must be >= 0 (0: full backprop), got {self.truncation}")
        if not self.train_tasks or not self.test_tasks:
            raise ValueError("give at least one meta-training and one meta-test task")
        if not self.sigma > 0 or not self.lr > 0:
            raise ValueError(f"sigma and lr must be positive, got sigma={self.sigma}, lr={self.lr}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "MetaTrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"config has unknown keys {sorted(unknown)}; was it written by a newer metalearn?")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def replace(self, **changes) -> "MetaTrainConfig":
        return dataclasses.replace(self, **changes)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)
