"""`python -m ml.experiments` runs every recorded attempt on a small generated dataset."""

from __future__ import annotations

from pathlib import Path

from ml import experiments


def test_experiments_write_one_row_per_variant(tiny_data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "experiments.md"
    assert experiments.main(["--data", str(tiny_data_dir), "--out", str(out), "--rounds", "60"]) == 0
    rows = [
        line for line in out.read_text().splitlines() if line.startswith("| seed6 |") or line.startswith("| catalog |")
    ]
    assert sum(r.startswith("| seed6 |") for r in rows) == 4
    assert sum(r.startswith("| catalog |") for r in rows) == 9
    assert sum("vote 0.4" in r and "best iteration" in r for r in rows) == 2
    cleaned = [r for r in rows if "cleaned" in r]
    assert all("fit rows dropped" in r for r in cleaned)
    forests = [r for r in rows if "random forest" in r]
    assert all("compact artefact" in r and " MiB" in r for r in forests)
    for r in rows:
        accuracy = float(r.split("|")[3])
        assert 0.0 <= accuracy <= 1.0
