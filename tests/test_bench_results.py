"""`make bench` records the benchmarks' tables and renders the README's measured block from them
(bench/results.py): rows with a target, whatever shape each script's table has, and nothing of the
README outside the block."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import results

HOST = {"cpu": "Test CPU", "cpus": 2, "memory_gib": 24.0, "system": "Linux 6", "python": "3.11.7"}

RADIO = """radio feedback · 32 radios, 30 s after 5.0 s warm-up
| measure                            | value     | target | value / target |
|------------------------------------|-----------|--------|----------------|
| answers/s                          | 471       | >= 400 | 1.18           |
| p99 (ms)                           | 85.1      | <= 100 | 0.85           |
| server CPU per answer (ms)         | 2.31      | —      | —              |
targets: met
"""

PREDICT = """| model | measure | ms | target ms | ratio |
|---|---|---|---|---|
| catalog-v1 | predict 1,000 rows | 26.2 | 30 | 0.87 |
| catalog-v1 | one row p99 | 0.79 | | |

| models on disk | MB | target MB | ratio |
|---|---|---|---|
| data/models (8 files) | 56.4 | 60 | 0.94 |
"""


def test_tables_are_read_whatever_their_shape() -> None:
    found = results.tables(RADIO + "\nsome text | with a bar\n" + PREDICT)
    assert [len(t) for t in found] == [4, 3, 2]
    assert found[0][0] == ["measure", "value", "target", "value / target"]
    assert results.target_rows(found[0]) == [
        ("answers/s", "471", ">= 400", "1.18"),
        ("p99 (ms)", "85.1", "<= 100", "0.85"),
    ]
    assert results.target_rows(found[1]) == [("catalog-v1 · predict 1,000 rows", "26.2", "30", "0.87")]
    assert results.target_rows(found[2]) == [("data/models (8 files)", "56.4", "60", "0.94")]


def test_a_run_replaces_only_its_own_entry_and_the_block_shows_every_target() -> None:
    store = results.record({}, "bench_radio", RADIO, exit_code=0, at="2026-11-28 11:04", commit="abc1234", host=HOST)
    store = results.record(
        store, "bench_predict", PREDICT, exit_code=0, at="2026-11-28 11:20", commit="abc1234", host=HOST
    )
    again = RADIO.replace("471 ", "492 ")
    store = results.record(store, "bench_radio", again, exit_code=0, at="2026-11-28 12:00", commit="def5678", host=HOST)
    block = results.render_block(store)
    assert "| bench_radio | answers/s | 492 | >= 400 | 1.18 | 2026-11-28 12:00, def5678 |" in block
    assert "| bench_predict | catalog-v1 · predict 1,000 rows | 26.2 | 30 | 0.87 | 2026-11-28 11:20, abc1234 |" in block
    assert "471" not in block and "server CPU per answer" not in block  # the old run; a row without target
    assert "Test CPU, 2 CPUs, 24.0 GiB" in block
    doc = results.render_doc(store)
    assert "## bench_radio" in doc and "| server CPU per answer (ms) | 2.31 | — | — |" in doc


def test_the_readme_changes_only_between_the_markers() -> None:
    readme = f"# Encore\n\nintro\n\n{results.START}\nold table\n{results.END}\n\nafter\n"
    block = results.render_block(results.record({}, "bench_radio", RADIO, exit_code=0, at="t", commit="c", host=HOST))
    updated = results.update_readme(readme, block)
    assert updated.startswith("# Encore\n\nintro\n\n") and updated.endswith("\n\nafter\n")
    assert "old table" not in updated and "| bench_radio | answers/s | 471 |" in updated
    assert results.update_readme(updated, block) == updated
    with pytest.raises(ValueError, match="bench:start"):
        results.update_readme("# no block here\n", block)


def test_the_store_survives_a_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.json"
    assert results.load(path) == {}
    store = results.record({}, "bench_radio", RADIO, exit_code=1, at="t", commit="c", host=HOST)
    results.save(path, store)
    assert results.load(path) == store
    assert results.render_block(results.load(path)) == results.render_block(store)
