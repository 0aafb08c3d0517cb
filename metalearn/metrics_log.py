"""metrics.jsonl, one JSON line per generation: read tolerating the torn last line a crash leaves, and
rewritten on resume atomically (written aside, then renamed), so a kill during the rewrite loses nothing."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path


class MetricsError(ValueError):
    """A metrics file with a damaged line that is not the last one."""


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
