"""A run's metrics.jsonl read back, and training.png drawn from it (fitness, validation and meta-test scores)."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training(run_dir: Path) -> Path | None:
    """training.png: train fitness, and validation and meta-test scores over generations, from metrics.jsonl."""
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
    for key, label in (("val_score", "validation (chooses best/)"), ("test_score", "meta-test")):
        points = [(r["generation"], r[key]) for r in evals if key in r]
        if points:
            ax_acc.plot(*zip(*points), marker="o", ms=3, label=label)
    ax_acc.set(xlabel="generation", ylabel="score", title="validation and meta-test during training", ylim=(0, 1))
    for ax in (ax_fit, ax_acc):
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    path = Path(run_dir) / "training.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
