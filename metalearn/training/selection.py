"""Which checkpoint `best/` holds and why: the evaluation with the highest val_score, the mean score on the
validation tasks. Meta-test scores are reported next to it and never choose."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from metalearn.training import checkpoint
from metalearn.training.metrics import read_metrics

if TYPE_CHECKING:
    from metalearn.training.run import Run


def best_selection(run_dir: Path) -> dict | None:
    """{"generation", "selected_by", and the score it was selected on} of the run's best checkpoint, or None
    without one. Runs made before validation existed chose on mean meta-test accuracy, and say so."""
    steps = checkpoint.saved_steps(run_dir, checkpoint.BEST)
    if not steps:
        return None
    record = next((r for r in read_metrics(run_dir) if r["generation"] == steps[-1]), {})
    if "val_score" in record:
        return {"generation": steps[-1], "selected_by": "validation", "val_score": record["val_score"]}
    return {"generation": steps[-1], "selected_by": "meta-test", "test_acc": record.get("test_acc")}


def run_selection(run: Run) -> dict | None:
    """`best_selection` of a loaded run's directory; for a pretrained folder, the one recorded at export (None
    if it holds a latest checkpoint)."""
    return run.info["pretrained"]["selection"] if "pretrained" in run.info else best_selection(run.run_dir)


def describe_selection(best: dict | None) -> str:
    """One line for people: which generation, chosen on what, with which score."""
    if best is None:
        return "no best checkpoint"
    if best["selected_by"] == "validation":
        return f"best: generation {best['generation']}, selected by validation (val_score {best['val_score']:.3f})"
    return f"best: generation {best['generation']}, selected by meta-test accuracy (a run made before validation)"
