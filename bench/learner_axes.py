#!/usr/bin/env python
"""Three of the four axes for every learner's default configuration on one task shape.

    python bench/learner_axes.py                      # 28x28 inputs, 10 classes, 100-step episodes
    python bench/learner_axes.py --inputs 64 --length 500

Prints algorithm size, learnable-state size and FLOPs per inner step (XLA cost analysis of the compiled
step) and writes bench/results/learner_axes.json. Quality, the fourth axis, comes from launch/meta_test.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metalearn.learners import LEARNERS, TaskSpec, learner_sizes, make_learner, step_flops  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=int, default=784)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--length", type=int, default=100, help="episode length (sets kNN's capacity)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "learner_axes.json")
    args = p.parse_args()
    spec = TaskSpec(args.inputs, args.classes, args.length)
    rows = []
    print(f"{args.inputs} inputs, {args.classes} classes, {args.length}-step episodes")
    print(f"{'learner':<12}{'algorithm':>12}{'state':>12}{'algorithm/state':>17}{'FLOPs/step':>13}")
    for name in LEARNERS:
        learner = make_learner(name)
        sizes = learner_sizes(learner, spec)
        flops = step_flops(learner, spec)
        ratio = sizes.algorithm / sizes.state
        rows.append({"learner": name, **sizes._asdict(), "ratio": ratio, "flops_per_step": flops})
        print(f"{name:<12}{sizes.algorithm:>12,}{sizes.state:>12,}{ratio:>17.3g}{flops:>13.3g}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"inputs": args.inputs, "classes": args.classes, "length": args.length,
                                    "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
