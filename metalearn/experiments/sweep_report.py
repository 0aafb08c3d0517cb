"""The sweep's report: one row per (learner, task level) with seed means and 95% intervals, as CSV and
Markdown, and plots of meta-train score, unseen-task scores and generalization gap against log10(algorithm /
state size) (one line per task level) and against the number of meta-training tasks, with the tuned hand-designed learners as reference lines.

Definitions: meta-train accuracy is scored on the point's own meta-training distribution (train split,
e.g. its 4 fixed permutations); every cell is a task's `score` (query-phase accuracy for ordered streams,
whole-episode online accuracy otherwise) on the named split; the gap is the meta-train score minus the mean
over the unseen tasks without a query phase (same metric on both sides). An unseen task from the
training dataset (MNIST's test split with fresh label permutations) is new images and, for every level but
the unbounded ones, new tasks; the other datasets are new input distributions for every level.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from metalearn.experiments.report import mean_interval
from metalearn.experiments.sweep import SweepConfig, archive, load_sweep, point_dir, write_json_atomic

BASELINE_STYLES = {"sgd": "--", "adam": ":", "class_mean": "-."}


def _accuracy(score: dict | str | None) -> float:
    """The task's headline score; NaN for an unavailable task."""
    return score["score"] if isinstance(score, dict) else math.nan


def _available(sweep: SweepConfig, results: list[dict]) -> list[str]:
    """Unseen tasks scored by at least one point (a dataset missing on this machine is left out)."""
    return [u for u in sweep.unseen if any(isinstance(r["scores"].get(u), dict) for r in results)]


def _gap_tasks(results: list[dict], unseen: list[str]) -> list[str]:
    return [u for u in unseen if all(not isinstance(r["scores"].get(u), dict) or
                                     r["scores"][u].get("query_acc") is None for r in results)]


def load_results(sweep_dir: Path) -> tuple[SweepConfig, list[dict], dict]:
    sweep = load_sweep(sweep_dir)
    results = []
    for point in sweep.points():
        path = point_dir(sweep_dir, point.id) / "result.json"
        if path.exists():
            results.append(json.loads(path.read_text()))
    if not results:
        raise ValueError(f"{sweep_dir} has no finished points yet; run `launch/sweep.py run --out {sweep_dir}`")
    baselines_path = Path(sweep_dir) / "baselines.json"
    baselines = json.loads(baselines_path.read_text()) if baselines_path.exists() else {}
    return sweep, results, baselines


def summarize(sweep: SweepConfig, results: list[dict]) -> list[dict]:
    """One row per (learner, task level) in config order, with mean and interval over its seeds."""
    unseen = _available(sweep, results)
    gap_tasks = _gap_tasks(results, unseen)
    rows = []
    for learner in sweep.learners:
        for level in sweep.tasks:
            group = [r for r in results if r["learner"] == learner.label and r["tasks"] == level.label]
            if not group:
                continue
            first, rank = group[0], learner.overrides.get("noise_rank", 0)
            outer = first["outer"] + (f", rank-{rank} noise" if rank and first["outer"] == "es" else "")
            row = {"learner": learner.label, "outer": outer, "algorithm": first["algorithm_size"],
                   "state": first["state_size"], "log10_ratio": math.log10(first["algorithm_size"] / first["state_size"]),
                   "tasks": level.label, "start": learner.overrides.get("init_from") or "fresh",
                   "seeds": len(group), "flops_per_step": first["flops_per_step"],
                   "train_minutes": float(np.mean([r["train_seconds"] for r in group])) / 60}
            columns = {name: [_accuracy(r["scores"].get(name)) for r in group] for name in ("meta_train", *unseen)}
            columns["gap"] = [m - float(np.mean([columns[u][i] for u in gap_tasks]))
                              for i, m in enumerate(columns["meta_train"])]
            for name, values in columns.items():
                row[name], row[f"{name}_ci"] = mean_interval(values)
            rows.append(row)
    return rows


def baseline_rows(sweep: SweepConfig, baselines: dict, unseen: list[str]) -> list[dict]:
    """The hand-designed learners; their meta-train accuracy is on the task level they were tuned on."""
    tuned_on = next((t.label for t in sweep.tasks if t.spec == baselines.get("tuned_on")), "-")
    rows = []
    for name, b in baselines.items():
        if name == "tuned_on":
            continue
        outer = b.get("outer", "hand-designed")  # or the warm points' start, scored before their ES steps
        row = {"learner": b["spec"], "outer": outer, "algorithm": b["algorithm_size"], "state": b["state_size"],
               "tasks": f"tuned on {tuned_on}" if outer == "hand-designed" else f"trained on {b['tasks']}",
               "meta_train": _accuracy(b["scores"]["meta_train"]), "flops_per_step": b["flops_per_step"]}
        rows.append({**row, **{u: _accuracy(b["scores"].get(u)) for u in unseen}})
    return rows


def _cell(row: dict, name: str) -> str:
    value, ci = row.get(name, math.nan), row.get(f"{name}_ci", math.nan)
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.3f}" if ci is None or math.isnan(ci) else f"{value:.3f} ± {ci:.3f}"


def markdown_table(rows: list[dict], base_rows: list[dict], unseen: list[str], skipped: list[str]) -> str:
    header = ["learner", "outer", "start", "algorithm", "state", "log10 ratio", "tasks", "seeds", "meta-train",
              *unseen, "gap", "FLOPs/step", "train min"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["learner"], r["outer"], r["start"], f"{r['algorithm']:,}", f"{r['state']:,}", f"{r['log10_ratio']:.2f}",
                 r["tasks"], str(r["seeds"]), _cell(r, "meta_train"),
                 *(_cell(r, u) for u in unseen), _cell(r, "gap"), f"{r['flops_per_step']:.3g}",
                 f"{r['train_minutes']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    for r in base_rows:
        cells = [r["learner"], r["outer"], "-", f"{r['algorithm']:,}", f"{r['state']:,}", "-", r["tasks"], "-",
                 _cell(r, "meta_train"), *(_cell(r, u) for u in unseen), "-", f"{r['flops_per_step']:.3g}", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = ["", ("Mean ± half-width of the 95% t-interval over seeds of each task's score: query-phase accuracy "
                  "on ordered streams, whole-episode online accuracy otherwise. "
                  "gap = meta-train score minus the mean over the unseen tasks without a query phase. "
                  "Hand-designed learners: the best of their grid on the meta-training distribution. start: "
                  "fresh (the learner's initialisation) or the run whose meta-parameters began it (warm); outer "
                  "'warm start' is that run itself, scored before any of the points' ES steps (the grouped "
                  "points compute its function at their start, the hidden-layer ones put it in a deeper "
                  "network).")]
    notes += [f"Not run: {u} (its data is not available on this machine)." for u in skipped]
    return "\n".join(lines + notes) + "\n"


def write_csv(path: Path, rows: list[dict], base_rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for r in rows + base_rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows + base_rows)


def _panels(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
    return plt, fig, axes[0]


def _baseline_lines(ax, base_rows: list[dict], metric: str) -> None:
    for r in base_rows:
        value = r.get(metric, math.nan)
        if not math.isnan(value):
            name = r["learner"].split(":")[0]
            ax.axhline(value, color="grey", ls=BASELINE_STYLES.get(name, "--"), lw=1, label=r["learner"])


def _finish(plt, fig, axes, metrics: list[str], xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    for ax, metric in zip(axes, metrics):
        if metric == "gap":
            ax.axhline(0, color="black", lw=0.6)
            ax.set(title="gap: meta-train - unseen")
        else:
            ax.set(title=metric, ylim=(-0.02, 1))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    handles = max(axes, key=lambda ax: len(ax.get_legend_handles_labels()[0])).get_legend_handles_labels()
    axes[-1].legend(*handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the panels
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_ratio(path: Path, rows: list[dict], base_rows: list[dict], unseen: list[str], levels: list[str]) -> Path:
    """Meta-train score, each unseen task's score and the gap vs log10(algorithm / state size): one line per
    task level, start (fresh; dashed: warm, from another run) and outer optimizer (ES: circles; others,
    e.g. backprop or rank-r noise: their own markers) through its points (sorted by ratio), seed intervals
    as error bars."""
    metrics = ["meta_train", *unseen, "gap"]
    plt, fig, axes = _panels(len(metrics))
    kinds = list(dict.fromkeys((r["start"], r["outer"]) for r in rows))
    markers = {outer: "osD^vP"[i % 6] for i, outer in enumerate(dict.fromkeys(o for _, o in kinds))}
    for ax, metric in zip(axes, metrics):
        for i, level in enumerate(levels):
            for start, outer in kinds:
                line = sorted((r for r in rows if r["tasks"] == level and (r["start"], r["outer"]) == (start, outer)),
                              key=lambda r: r["log10_ratio"])
                if not line:
                    continue
                label = f"tasks: {level}" + ("" if start == "fresh" else f", from {start}") + \
                    ("" if outer == "es" else f", {outer}")
                ax.errorbar([r["log10_ratio"] for r in line], [r[metric] for r in line],
                            yerr=[np.nan_to_num(r[f"{metric}_ci"]) for r in line], marker=markers[outer],
                            capsize=3, color=f"C{i}", ls="-" if start == "fresh" else "--", label=label)
        if metric != "gap":
            _baseline_lines(ax, base_rows, metric)
    return _finish(plt, fig, axes, metrics, "log10(algorithm size / state size)", "score",
                   "mean and 95% interval over seeds, one line per meta-training task level", path)


def plot_tasks(path: Path, rows: list[dict], base_rows: list[dict], unseen: list[str], levels: list[str],
               colors: dict[str, str]) -> Path:
    """Unseen accuracy and the gap vs the number of distinct meta-training tasks, one line per learner."""
    metrics = [*unseen, "gap"]
    plt, fig, axes = _panels(len(metrics))
    for ax, metric in zip(axes, metrics):
        for learner, color in colors.items():
            line = [r for r in rows if r["learner"] == learner]
            if len(line) < 2:  # a learner at one task level is no line; it is in the ratio plot
                continue
            ax.errorbar([levels.index(r["tasks"]) for r in line], [r[metric] for r in line],
                        yerr=[np.nan_to_num(r[f"{metric}_ci"]) for r in line], marker="o", capsize=3,
                        color=color, label=f"{learner} (log10 ratio {line[0]['log10_ratio']:.1f})")
        if metric != "gap":
            _baseline_lines(ax, base_rows, metric)
        ax.set_xticks(range(len(levels)), levels, rotation=20, fontsize=8)
    return _finish(plt, fig, axes, metrics, "distinct meta-training tasks", "score",
                   "mean and 95% interval over seeds", path)


def write_report(sweep_dir: Path) -> list[Path]:
    """sweep_table.csv, sweep_table.md, sweep_ratio.png, sweep_tasks.png and sweep_results.json (the
    archive of what they were made from) in `sweep_dir`."""
    sweep_dir = Path(sweep_dir)
    sweep, results, baselines = load_results(sweep_dir)
    archive_path = sweep_dir / "sweep_results.json"
    write_json_atomic(archive_path, archive(sweep, results, baselines))
    unseen = _available(sweep, results)
    skipped = [u for u in sweep.unseen if u not in unseen]
    rows, base_rows = summarize(sweep, results), baseline_rows(sweep, baselines, unseen)
    csv_path, md_path = sweep_dir / "sweep_table.csv", sweep_dir / "sweep_table.md"
    write_csv(csv_path, rows, base_rows)
    md_path.write_text(markdown_table(rows, base_rows, unseen, skipped))
    levels = [level.label for level in sweep.tasks if any(r["tasks"] == level.label for r in rows)]
    colors = {p.label: f"C{i}" for i, p in enumerate(sweep.learners)}
    return [archive_path, csv_path, md_path,
            plot_ratio(sweep_dir / "sweep_ratio.png", rows, base_rows, unseen, levels),
            plot_tasks(sweep_dir / "sweep_tasks.png", rows, base_rows, unseen, levels, colors)]
