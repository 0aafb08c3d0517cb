"""Tables, CSV/JSON files and plots of meta-test results: one row per (task, learner), four axes each.

`score` leads every table: query-phase accuracy on streams, whole-episode online accuracy otherwise."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
from scipy import stats

COLUMNS = ("score", "task", "learner", "algorithm_size", "state_size", "flops_per_step", "acc", "acc_ci",
           "acc_last20", "query_acc", "loss")


def mean_interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval over seeds (NaN with one seed)."""
    x = np.asarray([v for v in values if not math.isnan(v)], float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), math.nan
    return float(x.mean()), float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))


def _finite(value: float | None) -> float | None:
    """None for a missing or non-finite number (JSON has no NaN)."""
    return None if value is None or not math.isfinite(value) else float(value)


def seed_rows(rows: list[dict], learned: list[str]) -> list[dict]:
    """One row per (task, learner) over the runs: the `learned` labels (one per run, seeds of one
    configuration) become a single row with the mean score and its 95% t-interval over the runs that have
    a score; a baseline, scored once on the same episodes, keeps its score and the interval over episodes
    of whole-episode accuracy (none on streams, whose score is the query accuracy)."""
    out = []
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task]
        scores = [math.nan if r["score"] is None else r["score"] for r in mine if r["learner"] in learned]
        mean, half = mean_interval(scores)
        out.append({"task": task, "learner": f"learned, {sum(map(math.isfinite, scores))} runs",
                    "score": _finite(mean), "interval": _finite(half), "over": "runs",
                    "per_run": [_finite(v) for v in scores]})
        out += [{"task": task, "learner": r["learner"], "score": r["score"],
                 "interval": r["acc_ci"] if r["query_acc"] is None else None, "over": "episodes", "per_run": []}
                for r in mine if r["learner"] not in learned]
    return out


def _widths(rows: list[dict]) -> tuple[int, int]:
    """Column widths of the task and learner names in a text table."""
    return tuple(max(len(name), *(len(r[name]) for r in rows)) + 2 for name in ("task", "learner"))


def format_seed_table(rows: list[dict]) -> str:
    """`seed_rows` as fixed-width text ('-' for a missing score or interval)."""
    number = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    tw, lw = _widths(rows)
    lines = [f"{'task':<{tw}}{'learner':<{lw}}{'score':>7}  {'95% interval':<20}per run"]
    for r in rows:
        interval = "-" if r["interval"] is None else f"±{r['interval']:.3f} ({r['over']})"
        lines.append(f"{r['task']:<{tw}}{r['learner']:<{lw}}{number(r['score']):>7}  {interval:<20}"
                     + " ".join(map(number, r["per_run"])))
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of the four axes ('-' where a task has no query phase)."""
    tw, lw = _widths(rows)
    header = f"{'score':>6}  {'task':<{tw}}{'learner':<{lw}}{'algorithm':>10}{'state':>10}{'FLOPs/step':>12}" \
             f"{'acc':>14}{'last 20%':>10}{'query':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        query = "-" if r["query_acc"] is None else f"{r['query_acc']:.3f}"
        lines.append(f"{r['score']:>6.3f}  {r['task']:<{tw}}{r['learner']:<{lw}}{r['algorithm_size']:>10,}{r['state_size']:>10,}"
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


def smoothing_window(steps: int) -> int:
    """Steps averaged per plotted point: 1 up to 200 steps, then ~1% of the episode, so that a long
    episode's curves show the trend instead of the per-step noise of a few dozen episodes."""
    return 1 if steps <= 200 else steps // 100


def plot_curves(out_dir: Path, task: str, curves: dict[str, dict]) -> Path:
    """Online accuracy per inner step, one line per learner with its 95% band, for one task (a moving
    average over `smoothing_window` steps on long episodes, said in the title; the band is then the
    per-step intervals averaged, wider than the average's own)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.ndimage import uniform_filter1d

    fig, ax = plt.subplots(figsize=(7, 4.2))
    window = smoothing_window(max(len(curve["acc"]) for curve in curves.values()))
    for learner, curve in curves.items():
        mean, ci = np.asarray(curve["acc"], float), np.asarray(curve["acc_ci"], float)
        mean, ci = (uniform_filter1d(a, window, mode="nearest") for a in (mean, ci))
        steps = np.arange(1, len(mean) + 1)
        ax.plot(steps, mean, label=learner, lw=1.6 if learner.startswith("learned") else 1.1)
        ax.fill_between(steps, mean - ci, mean + ci, alpha=0.2)
    title = f"meta-test on {task}" + (f" (moving average over {window} steps)" if window > 1 else "")
    ax.set(xlabel="inner step (examples seen)", ylabel="online accuracy", title=title, ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path = out_dir / f"curves_{task.replace(':', '_').replace(',', '_').replace('=', '')}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
