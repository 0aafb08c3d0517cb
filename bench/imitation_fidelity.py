#!/usr/bin/env python
"""How faithfully a connection-level imitation (`--teacher-level connections`) copies class mean, per task:
the learned algorithm's accuracy beside the accuracy of the terms it was fitted to, and the relative error.

    python bench/imitation_fidelity.py runs/imit_cm_s0_best --tasks mnist:resize=7 fashion_mnist:resize=7

A diagnostic of a stage-1 checkpoint on meta-test tasks (test splits): it explains a transfer gap, it does not
choose anything. Whole-episode online accuracy; relative error = mean squared error of the connections'
outputs over the mean square of their targets. Writes bench/results/imitation_fidelity.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

from metalearn import load_run  # noqa: E402
from metalearn.rollout.imitation import imitation_episode  # noqa: E402
from tasks.registry import load_task  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="runs or pretrained folders of a one-layer VSML")
    parser.add_argument("--tasks", nargs="+", default=["mnist:resize=7", "fashion_mnist:resize=7"])
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "imitation_fidelity.json")
    args = parser.parse_args()
    results = {"split": "test", "episodes": args.episodes, "episode_length": args.episode_length, "runs": {}}
    sample_keys, state_keys = jax.random.split(jax.random.split(jax.random.key(0))[0], (2, args.episodes))
    tasks = {spec: load_task(spec).test for spec in args.tasks}  # the same episodes for every run
    episodes = {spec: jax.vmap(lambda k, t=task: t.sample(k, args.episode_length))(sample_keys)
                for spec, task in tasks.items()}
    for path in args.runs:
        run = load_run(path)
        temperature = run.config.teacher_temperature if run.config.teacher_level == "connections" else 1.0
        results["runs"][path] = {"learner": run.config.learner}
        for spec, task in tasks.items():
            trace = jax.jit(jax.vmap(lambda k, ep: imitation_episode(
                run.learner, run.meta_params, k, ep, task.num_classes, temperature)))(state_keys, episodes[spec])
            row = {"learned_acc": float(trace.correct.mean()), "teacher_acc": float(trace.teacher_correct.mean()),
                   "relative_error": float(trace.loss.mean() / trace.target_power.mean())}
            results["runs"][path][spec] = row
            print(f"{path} {spec}: learned {row['learned_acc']:.3f}, its target {row['teacher_acc']:.3f}, "
                  f"relative error {row['relative_error']:.3f}")
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
