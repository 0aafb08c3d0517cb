"""The axis tables in docs/ are the report of the committed archive of the `axis` preset: restoring
docs/axis_results.json and reporting it remakes docs/axis_table.csv and .md exactly, and the archive's
sweep is the preset as it is defined now (a changed preset would leave the documented numbers stale)."""

import json
from pathlib import Path

from metalearn.experiments.presets import PRESETS
from metalearn.experiments.sweep import SweepConfig, restore
from metalearn.experiments.sweep_report import write_report

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_archive_is_the_current_axis_preset():
    archived = json.loads((DOCS / "axis_results.json").read_text())["sweep"]
    assert json.dumps(archived) == json.dumps(SweepConfig.from_json(PRESETS["axis"]).to_json())


def test_documented_tables_are_the_archive_report(tmp_path):
    assert restore(tmp_path, DOCS / "axis_results.json") == 75
    write_report(tmp_path)
    assert (tmp_path / "sweep_table.csv").read_text() == (DOCS / "axis_table.csv").read_text()
    assert (tmp_path / "sweep_table.md").read_text() == (DOCS / "axis_table.md").read_text()
