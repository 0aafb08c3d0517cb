"""The axis tables in docs/ are the report of the committed archive of the `axis` preset: restoring
docs/axis_results.json and reporting it remakes docs/axis_table.csv and .md, and the archive's sweep is the
preset as it is defined now (a changed preset would leave the documented numbers stale)."""

import csv
import math
from pathlib import Path

from metalearn.experiments.presets import PRESETS
from metalearn.experiments.sweep import SweepConfig, check_same_sweep, restore
from metalearn.experiments.sweep_report import write_report

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _same_cell(a: str, b: str) -> bool:
    """Equal text, or numbers equal to rounding (the intervals come from scipy and numpy, whose last
    digits may differ between versions)."""
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a == b
    return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


def test_archive_is_the_current_axis_preset(tmp_path):
    restore(tmp_path, DOCS / "axis_results.json")
    check_same_sweep(tmp_path, SweepConfig.from_json(PRESETS["axis"]), "the axis preset")  # raises if not


def test_documented_tables_are_the_archive_report(tmp_path):
    assert restore(tmp_path, DOCS / "axis_results.json") == 75
    write_report(tmp_path)
    made = list(csv.reader((tmp_path / "sweep_table.csv").open()))
    documented = list(csv.reader((DOCS / "axis_table.csv").open()))
    assert [len(row) for row in made] == [len(row) for row in documented]
    mismatched = [(m, d) for rm, rd in zip(made, documented) for m, d in zip(rm, rd) if not _same_cell(m, d)]
    assert not mismatched
    assert (tmp_path / "sweep_table.md").read_text() == (DOCS / "axis_table.md").read_text()
