from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.data import duplicate_groups, eval_units, grouped_split, task_split
from ml.features import AUDIO_FEATURES
from ml.text import fold_key, song_key
from tests.ml.conftest import make_catalog_frame


def _frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    base = dict.fromkeys(AUDIO_FEATURES, 0.5)
    return pd.DataFrame([{**base, **r} for r in rows])


def test_groups_are_transitive_over_id_vector_and_song() -> None:
    frame = _frame(
        [
            {"track_id": "a", "artists": "X", "track_name": "One", "energy": 0.1},
            {"track_id": "a", "artists": "Y", "track_name": "Two", "energy": 0.2},  # same id as row 0
            {"track_id": "b", "artists": "Z", "track_name": "Three", "energy": 0.2},  # same vector as row 1? no
            {"track_id": "c", "artists": "Y", "track_name": "two!", "energy": 0.3},  # same song as row 1
            {"track_id": "d", "artists": "Q", "track_name": "Four", "energy": 0.3},  # same vector as row 3
            {"track_id": "e", "artists": "R", "track_name": "Five", "energy": 0.9},  # alone
        ]
    )
    frame.loc[2, "danceability"] = 0.9  # row 2 differs from row 1 in another feature
    groups = duplicate_groups(frame)
    assert groups[0] == groups[1] == groups[3] == groups[4]
    assert len({groups[0], groups[2], groups[5]}) == 3


def test_song_key_ignores_case_accents_and_artist_order() -> None:
    assert song_key("Beyoncé;JAY-Z", "Crazy in Love") == song_key("jay z;beyonce", "crazy  in love!")
    assert song_key("A", None) == ""
    assert fold_key("A", None) is None and fold_key("", "Song") is None and fold_key(None, "Song") is None
    assert fold_key("A", "Song") == song_key("A", "Song")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.integers(0, 30), st.sampled_from("abcd")), min_size=40, max_size=200),
    st.integers(0, 10_000),
)
def test_grouped_split_never_puts_a_group_on_both_sides(rows: list[tuple[int, str]], seed: int) -> None:
    groups = np.array([g for g, _ in rows])
    labels = np.array([y for _, y in rows])
    if len(set(groups)) < 5:
        return
    train, test = grouped_split(labels, groups, 0.2, seed)
    assert len(train) + len(test) == len(rows)
    assert not set(groups[train]) & set(groups[test])
    assert len(test) > 0 and len(train) > 0


def test_task_split_keeps_fit_validation_and_test_groups_apart() -> None:
    frame = make_catalog_frame(per_genre=30)
    groups = duplicate_groups(frame)
    labels = frame["track_genre"].to_numpy()
    fit, val, test = task_split(labels, groups, 42)
    assert sorted([*fit, *val, *test]) == list(range(len(frame)))
    parts = [set(groups[p]) for p in (fit, val, test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(test) > len(val) > 0
    assert [a.tolist() for a in task_split(labels, groups, 42)] == [fit.tolist(), val.tolist(), test.tolist()]


def test_eval_units_collect_every_label_of_a_group() -> None:
    frame = make_catalog_frame(per_genre=10)
    groups = duplicate_groups(frame)
    labels = frame["track_genre"].to_numpy()
    units = eval_units(frame, labels, groups, np.arange(len(frame)))
    first = list(units.rows).index(0)
    assert units.label_sets[first] == frozenset({"rock", "metal"})
    # the duplicate rows (same id and vector) count once
    assert len(units.rows) == len(frame) - 3
