"""A run's metrics.jsonl read back, and training.png drawn from it (fitness and meta-test accuracy)."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
