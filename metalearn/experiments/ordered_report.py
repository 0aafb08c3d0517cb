"""OrderedMNIST results on disk: results.json, results.csv, a markdown table and the two plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = ("learner", "score", "score_min", "score_max", "state_size", "algorithm_size", "flops_total",
           "train_steps", "queries", "seconds", "meta_trained_on")


def title(setup: dict) -> str:
    what = f"{setup['dataset']}, {setup['order']} class order, {setup['seeds']} seed(s)"
    if setup["subset"]:
        return f"{what}: NOT the benchmark (--subset {setup['subset']} per class)"
    return f"OrderedMNIST benchmark, {what}"


def markdown(setup: dict, rows: list[dict]) -> str:
    """The leaderboard, best score first; score = query accuracy on the test split (mean [min, max] over seeds)."""
    lines = [f"**{title(setup)}**; score = accuracy on every test-split query, after one pass over the train "
             f"split.", "",
             "| learner | score [min, max] | state floats | algorithm size | FLOPs total | train steps | "
             "queries | seconds | meta-trained on |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["score"]):
        lines.append(f"| {r['learner']} | {r['score']:.4f} [{r['score_min']:.4f}, {r['score_max']:.4f}] | "
                     f"{r['state_size']:,} | {r['algorithm_size']:,} | {r['flops_total']:.3g} | "
                     f"{r['train_steps']:,} | {r['queries']:,} | {r['seconds']:.1f} | {r['meta_trained_on']} |")
    return "\n".join(lines) + "\n"


def plot_pareto(setup: dict, rows: list[dict], path: Path) -> None:
    """Accuracy against learnable-state size (log); marker area grows with log FLOPs; algorithm size shown."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    least = min(max(r["flops_total"], 1.0) for r in rows)
    for i, r in enumerate(rows):
        area = 30 + 80 * math.log10(max(r["flops_total"], 1.0) / least)  # +80 per factor of ten
        ax.scatter(r["state_size"], r["score"], s=area, alpha=0.6)
        crowd = sum(abs(q["score"] - r["score"]) < 0.04 and abs(math.log10(q["state_size"] / r["state_size"])) < 0.7
                    for q in rows[:i])  # labels of close points stack away from the nearer edge
        shift = 22 * crowd * (1 if r["score"] < 0.5 else -1)
        ax.annotate(f"{r['learner']}\nalg {r['algorithm_size']:,}, {r['flops_total']:.2g} FLOPs",
                    (r["state_size"], r["score"]), textcoords="offset points", xytext=(6, 4 + shift), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("peak learnable-state floats (log)")
    ax.set_ylabel("query accuracy (test split)")
    ax.set_title(f"{title(setup)}\nmarker size: total FLOPs over the stream (log)", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_per_class(setup: dict, rows: list[dict], path: Path) -> None:
    """Query accuracy per class: early classes are where a forgetting learner drops to zero."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, r in enumerate(rows):
        ax.plot(range(len(r["per_class"])), r["per_class"], marker="osv^Dxp*"[i % 8], linestyle=("-", "--", ":")[i % 3],
                label=r["learner"])
    ax.set_xlabel("class (the stream's order when sorted)")
    ax.set_ylabel("query accuracy of the class")
    ax.set_title(title(setup), fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(out: Path, setup: dict, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"setup": setup, "benchmark": not setup["subset"],
                                                  "rows": rows}, indent=1))
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.md").write_text(markdown(setup, rows))
    plot_pareto(setup, rows, out / "accuracy_vs_state.png")
    plot_per_class(setup, rows, out / "per_class.png")
