#!/usr/bin/env python
"""The OrderedMNIST benchmark: every training pair once, sorted by class, then every test image as a query.

    python launch/ordered_mnist.py --dataset mnist --resize 7 --learners class_mean slda knn sgd adam \\
        --out runs/ordered_mnist7
    python launch/ordered_mnist.py --dataset fashion_mnist --learners slda knn:capacity=600 --run runs/mnist7
    python launch/ordered_mnist.py --subset 50 ...          # 50 per class: a quick look, not the benchmark

Each entry is placed on four axes: total FLOPs over the stream (XLA's cost per step x steps), learnable-state
floats, algorithm size (meta-parameters) and score (query accuracy on the test split, mean and range over
seeds), plus wall time. Writes results.json, results.csv, results.md, accuracy_vs_state.png and
per_class.png to --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch._compile_cache import cache_compiled_programs  # noqa: E402
from metalearn.training import checkpoint  # noqa: E402
from metalearn.experiments.ordered_benchmark import evaluate, hand_designed_entry, run_entry  # noqa: E402
from metalearn.experiments.ordered_report import markdown, write_results  # noqa: E402
from tasks.full_stream import DATASETS, ORDERS, load_stream_data  # noqa: E402

cache_compiled_programs()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="mnist", help=f"one of {', '.join(DATASETS)}")
    p.add_argument("--resize", type=int, default=7, help="image side: 7, 14 or 28")
    p.add_argument("--learners", nargs="*", default=["class_mean", "slda", "knn", "sgd", "adam"],
                   help="hand-designed learner specs (knn alone stores the whole stream; knn:capacity=600 a "
                        "reservoir)")
    p.add_argument("--run", nargs="*", default=[], help="meta_train.py run directories (latest checkpoint) or "
                                                         "pretrained folders")
    p.add_argument("--data-dir", default="", help="where the datasets' IDX files are")
    p.add_argument("--order", default="sorted", choices=ORDERS, help="class order of the training phase")
    p.add_argument("--seeds", type=int, default=3, help="within-class orders (and initial states) to average")
    p.add_argument("--subset", type=int, default=0, help="N > 0: only N examples per class of each split "
                                                        "(a quick look, NOT the benchmark)")
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.seeds < 1 or args.subset < 0:
            raise ValueError("--seeds must be at least 1 and --subset at least 0")
        data = load_stream_data(args.dataset, args.resize, args.subset, args.data_dir)
        steps = len(data.train_y)
        entries = [hand_designed_entry(spec) for spec in args.learners]
        entries += [run_entry(path, data) for path in args.run]
    except (ValueError, checkpoint.CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    setup = {"dataset": data.name, "order": args.order, "seeds": args.seeds, "subset": args.subset,
             "train_steps": steps, "queries": len(data.query_y), "command": " ".join(["python launch/ordered_mnist.py",
             *(sys.argv[1:] if argv is None else argv)])}
    rows = []
    for entry in entries:
        rows.append(evaluate(entry, data, args.seeds, args.order))
        print(f"{entry.label}: score {rows[-1]['score']:.4f} in {rows[-1]['seconds']:.1f}s per seed", flush=True)
    write_results(args.out, setup, rows)
    print(markdown(setup, rows))
    print(f"wrote {args.out}/results.json, results.csv, results.md, accuracy_vs_state.png, per_class.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
