"""A run's metrics.jsonl (one JSON line per generation) read back, tolerating the torn last line a crash
leaves; rewritten on resume atomically (written aside, then renamed), so a kill during the rewrite loses
nothing; and training.png drawn from it (fitness, validation and meta-test scores)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path


class MetricsError(ValueError):
    """A metrics file with a damaged line that is not the last one."""


def read_metrics(run_dir: Path) -> list[dict]:
    return read_metrics_file(Path(run_dir) / "metrics.jsonl")


def read_metrics_file(path: Path) -> list[dict]:
    """Every record of `path` ([] if missing). A cut last line is dropped with a warning; a damaged line
    elsewhere raises MetricsError naming the file and line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):
                warnings.warn(f"{path}: dropping the cut last line {number} (a run stopped while writing it)",
                              stacklevel=2)
                break
            raise MetricsError(f"{path} line {number} is not valid JSON ({err.msg}); repair or delete that line "
                               f"(or the file) and retry.") from None
    return records


def rewrite_metrics(path: Path, last_generation: int) -> None:
    """Keep only the records up to `last_generation` (a resumed run recomputes the rest)."""
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read_metrics_file(path) if r["generation"] <= last_generation]
    aside = path.with_name(path.name + ".tmp")
    with aside.open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
        f.flush()
        os.fsync(f.fileno())
    os.replace(aside, path)


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
