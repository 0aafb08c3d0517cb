"""Tables, CSV/JSON files and plots of meta-test results: one row per (task, learner), four axes each."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from metalearn.metrics_log import read_metrics_file

COLUMNS = ("task", "learner", "algorithm_size", "state_size", "flops_per_step", "acc", "acc_ci", "acc_last20",
           "query_acc", "loss")


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of the four axes ('-' where a task has no query phase)."""
    tw = max(len("task"), *(len(r["task"]) for r in rows)) + 2
    lw = max(len("learner"), *(len(r["learner"]) for r in rows)) + 2
    header = f"{'task':<{tw}}{'learner':<{lw}}{'algorithm':>10}{'state':>10}{'FLOPs/step':>12}" \
             f"{'acc':>14}{'last 20%':>10}{'query':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        query = "-" if r["query_acc"] is None else f"{r['query_acc']:.3f}"
        lines.append(f"{r['task']:<{tw}}{r['learner']:<{lw}}{r['algorithm_size']:>10,}{r['state_size']:>10,}"
                     f"{r['flops_per_step']:>12.3g}{r['acc']:>8.3f}±{r['acc_ci']:.3f}{r['acc_last20']:>10.3f}"
                     f"{query:>7}")
    return "\n".join(lines)


def write_results(out_dir: Path, rows: list[dict], curves: dict, meta: dict) -> list[Path]:
    """results.csv (the table), results.json (table, per-step curves, how it was made)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / "results.csv", out_dir / "results.json"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: r[k] for k in COLUMNS} for r in rows)
    json_path.write_text(json.dumps({"meta": meta, "rows": rows, "curves": curves}, indent=1))
    return [csv_path, json_path]


def plot_curves(out_dir: Path, task: str, curves: dict[str, dict]) -> Path:
    """Online accuracy per inner step, one line per learner with its 95% band, for one task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for learner, curve in curves.items():
        mean, ci = np.asarray(curve["acc"]), np.asarray(curve["acc_ci"])
        steps = np.arange(1, len(mean) + 1)
        ax.plot(steps, mean, label=learner, lw=1.6 if learner.startswith("learned") else 1.1)
        ax.fill_between(steps, mean - ci, mean + ci, alpha=0.2)
    ax.set(xlabel="inner step (examples seen)", ylabel="online accuracy", title=f"meta-test on {task}", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = out_dir / f"curves_{task.replace(':', '_').replace(',', '_').replace('=', '')}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def read_metrics(run_dir: Path) -> list[dict]:
    return read_metrics_file(Path(run_dir) / "metrics.jsonl")


def plot_training(run_dir: Path) -> Path | None:
    """training.png: train fitness and meta-test accuracy over generations, from metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    if not records:
        return None
    evals = [r for r in records if "test_acc" in r]
    fig, (ax_fit, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_fit.plot([r["generation"] for r in records], [r["train_fitness"] for r in records], lw=0.8)
    ax_fit.set(xlabel="generation", ylabel="train fitness (cross-entropy)", title="meta-training")
    for key, label in (("test_acc", "whole episode"), ("test_acc_last20", "last 20% of steps")):
        ax_acc.plot([r["generation"] for r in evals], [r[key] for r in evals], marker="o", ms=3, label=label)
    ax_acc.set(xlabel="generation", ylabel="meta-test online accuracy", title="meta-test during training", ylim=(0, 1))
    for ax in (ax_fit, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    path = Path(run_dir) / "training.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
