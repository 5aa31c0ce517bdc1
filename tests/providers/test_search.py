from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.search import Decision, SearchIndex, SearchRow, Verdict, decide, match, other_versions, same_song
from tests.providers.conftest import CATALOG, add_catalog, sid


def _index() -> SearchIndex:
    return SearchIndex.from_rows(
        SearchRow(i, name, artists, None, pop) for i, (_, name, artists, pop, _, _) in enumerate(CATALOG, 1)
    )


def _top(index: SearchIndex, query: str) -> int | None:
    hits = index.search(query, 10)
    return hits[0].track_id if hits else None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Queen - Bohemian Rhapsody", 1),
        ("bohemian rhapsody queen", 1),  # any order
        ("BOHEMIAN RHAPSODY", 1),  # case
        ("bohemain rhapsody", 1),  # transposition
        ("bohemian rapsody", 1),  # dropped letter
        ("Metalica enter sandmann", 6),  # two typos
        ("beyonce", 3),  # accents folded
        ("Björk Joga", 4),
        ("bjork jóga", 4),
        ("кино группа", 8),  # Cyrillic
        ("RADWIMPS kimi", 7),
        ("master of pup", 5),  # prefix of the last word
    ],
)
def test_finds_tracks_tolerantly(query: str, expected: int) -> None:
    assert _top(_index(), query) == expected


def test_nothing_for_unrelated_text() -> None:
    index = _index()
    assert index.search("zzzz qqqq xxxx", 10) == []
    assert index.search("", 10) == []
    assert index.search("!!!", 10) == []


def test_ranks_and_limits() -> None:
    hits = _index().search("metallica", 1)
    assert len(hits) == 1 and hits[0].track_id == 6  # the more popular one first
    assert [h.track_id for h in _index().search("queen", 10)][:2] == [1, 2]


def test_add_later_and_replace() -> None:
    index = _index()
    assert _top(index, "paranoid black sabbath") is None
    index.add([SearchRow(100, "Paranoid", "Black Sabbath", "Paranoid", 70)])
    assert _top(index, "black sabath paranoid") == 100
    index.add([SearchRow(100, "War Pigs", "Black Sabbath", "Paranoid", 70)])  # same id, new text
    assert _top(index, "paranoid") is None
    assert _top(index, "war pigs") == 100
    assert len(index) == len(CATALOG) + 1


async def test_load_from_database(sessions: async_sessionmaker[AsyncSession]) -> None:
    ids = await add_catalog(sessions)
    index = await SearchIndex.load(sessions)
    assert len(index) == len(CATALOG)
    assert _top(index, "enter sandman") == ids[sid(6)]


def test_unspaced_scripts_and_junk() -> None:
    index = SearchIndex.from_rows(
        [SearchRow(1, "言って。", "ヨルシカ", None, 60), SearchRow(2, "ひまわりの約束", "秦基博", None, 50)]
    )
    assert [h.track_id for h in index.search("ヨルシカ言って", 10)] == [1]  # no space between artist and title
    assert [h.track_id for h in index.search("ひまわりの約束", 10)] == [2]
    assert index.search("zzzzqqqq", 10) == []
    assert index.search("x" * 10_000, 10) == []


# -- scripts: a transliteration alias in the index -------------------------------------------


def _scripts_index() -> SearchIndex:
    return SearchIndex.from_rows(
        [
            SearchRow(1, "Группа крови", "Kino", None, 56),  # artist in Latin, title in Cyrillic (as in the catalogue)
            SearchRow(2, "Звезда по имени Солнце", "Kino", None, 56),
            SearchRow(3, "Катюша", 'Группа "Загадка"', None, 13),
            SearchRow(4, "Gruppa Express", "Someone Else", None, 30),
            SearchRow(5, "Я свободен", "Кипелов", None, 47),
            SearchRow(6, "Σ' αγαπώ", "Μελίνα Κανά", None, 20),
            SearchRow(7, "Kinotheater", "Die Band", None, 20),
        ]
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("кино", 1),  # Cyrillic query, Latin artist
        ("Kino gruppa krovi", 1),  # Latin query, Cyrillic title
        ("Кино группа крови", 1),
        ("Kino Группа крови", 1),
        ("kipelov ya svoboden", 5),  # Latin query, Cyrillic artist and title
        ("кипелов", 5),
        ("Kipelow", 5),  # and a typo in the Latin spelling
        ("melina kana", 6),  # Greek comes with anyascii
        ("zvezda po imeni", 2),
    ],
)
def test_both_scripts_find_both(query: str, expected: int) -> None:
    assert _top(_scripts_index(), query) == expected


def test_transliteration_does_not_drown_latin_results() -> None:
    index = _scripts_index()
    assert [h.track_id for h in index.search("gruppa express", 10)][:1] == [4]
    assert _top(index, "kinotheater") == 7


# -- index details ----------------------------------------------------------------------------


def test_a_swap_is_one_typo_and_an_exact_word_outranks_its_near_spellings() -> None:
    index = SearchIndex.from_rows(
        [
            SearchRow(1, "Leve", "Sandy", None, 60),
            SearchRow(2, "Vida Leve", "Talita", None, 60),
            SearchRow(3, "Love", "Someone", None, 20),
            *(SearchRow(10 + i, f"Love Song {i}", f"Singer {i}", None, 10) for i in range(40)),
        ]
    )
    assert _top(index, "love") == 3  # "love" is common, "leve" rare: the exact word still wins
    assert _top(index, "lvoe someone") == 3  # transposed letters (one edit for OSA, two for Levenshtein)


def test_versions_and_distinctive_titles() -> None:
    index = SearchIndex.from_rows(
        [
            SearchRow(1, "Bohemian Rhapsody - Remastered 2011", "Queen", None, 82),
            SearchRow(2, "Bohemian Rhapsody", "Queen", None, 75),
            SearchRow(3, "Bohemian Rhapsody - Acoustic", "John Adams", None, 52),
            SearchRow(4, "Rhapsody", "Paul van Dyk", None, 40),
            *(SearchRow(10 + i, f"Intro {i}", f"Band {i}", None, 10) for i in range(3)),
            SearchRow(20, "Intro", "Band A", None, 10),
            SearchRow(21, "Intro (Live)", "Band B", None, 10),
        ]
    )
    assert index.versions(1) == [2, 3]  # most popular first, itself left out
    assert index.versions(3) == [1, 2]
    assert index.versions(4) == []
    assert index.versions(20) == [21]
    assert index.versions(999) == []
    assert index.distinctive_title("Bohemian Rhapsody - Live")
    assert not index.distinctive_title("Intro")  # one word
    rows = [SearchRow(i, f"Let It Be {i}", f"Band {i}", None, 1) for i in range(40)]
    common = SearchIndex.from_rows([*rows, SearchRow(100, "Let It Be", "The Beatles", None, 80)])
    assert not common.distinctive_title("Let It Be")  # every word is in many titles


def test_candidates_carry_what_the_decision_reads() -> None:
    index = _scripts_index()
    found = index.candidates("кипелов", 5)
    assert found and found[0].id == 5 and found[0].name == "Я свободен"
    assert found[0].artists == ("Кипелов",) and found[0].popularity == 47 and found[0].score > 0
    assert index.track(3).artists == ('Группа "Загадка"',)


# -- the decision -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Song:
    id: int
    name: str
    artists: tuple[str, ...]
    popularity: int | None = 50


QUEEN_ETC = [
    Song(1, "Queen of Hearts", ("TWICE",), 70),  # what the old search padded the list with
    Song(2, "Bohemian Rhapsody - Remastered 2011", ("Queen",), 82),
    Song(3, "Bohemian Rhapsody", ("Queen",), 75),
    Song(4, "Bohemian Rhapsody - Acoustic", ("John Adams",), 52),
    Song(5, "Queen Bee", ("QUEEN BEE",), 40),
    Song(6, "Don't Stop Me Now - Remastered 2011", ("Queen",), 82),
    Song(7, "Bohemian Rhapsody - Live Aid", ("Queen",), 60),
    Song(8, "Группа крови", ("Kino",), 56),
    Song(9, "Катюша", ('Группа "Загадка"',), 13),
    Song(10, "Hips Don't Lie (feat. Wyclef Jean)", ("Shakira", "Wyclef Jean"), 80),
    Song(11, "Highway to Hell", ("AC/DC",), 80),
    Song(12, "Sweet Child O' Mine", ("Guns N' Roses",), 85),
]


def _decide(query: str, candidates: list[Song] = QUEEN_ETC) -> Decision[Song]:
    return decide(query, candidates, limit=20)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("queen bohemian rhapsody", 2),
        ("bohemian rhapsody queen", 2),  # any order
        ("Bohemian Rhapsody by Queen", 2),  # "by" is a filler word
        ("QUEEN BOHEMIAN RHAPSODY", 2),
        ("queen bohemain rhapsody", 2),  # a typo (swap) in one word …
        ("qeen bohemian rhapsdoy", 2),  # … or in every word
        ("queen bohemian rhapsody remastered 2011", 2),  # the suffix may be typed …
        ("queen bohemian rhapsody live aid", 7),  # … and then picks that version
        ("Кино группа крови", 8),  # the artist in the other script
        ("kino gruppa krovi", 8),
        ("shakira hips don't lie", 10),  # "(feat. X)" need not be typed
        ("hips dont lie shakira feat wyclef jean", 10),
        ("acdc highway to hell", 11),  # "AC/DC" typed as one word
        ("guns n roses sweet child o mine", 12),
        ("guns and roses sweet child of mine", None),  # two words the song does not have: not opened
    ],
)
def test_artist_and_title_covered_open_at_once(query: str, expected: int | None) -> None:
    decision = _decide(query)
    if expected is None:
        assert decision.verdict is not Verdict.OPEN
    else:
        assert decision.verdict is Verdict.OPEN, decision
        assert decision.ranked[0].id == expected


def test_the_plain_version_opens_before_a_live_one_nobody_asked_for() -> None:
    songs = [Song(1, "Numb - Live", ("Linkin Park",), 90), Song(2, "Numb", ("Linkin Park",), 80)]
    assert _decide("linkin park numb", songs).ranked[0].id == 2
    assert _decide("linkin park numb live", songs).ranked[0].id == 1


def test_two_different_songs_matched_as_well_make_a_choice() -> None:
    songs = [Song(1, "Love Me", ("Band",), 50), Song(2, "Me Love", ("Band",), 60)]
    decision = _decide("band love me", songs)
    assert decision.verdict is Verdict.CHOOSE and {s.id for s in decision.ranked} == {1, 2}


def test_other_versions() -> None:
    chosen = QUEEN_ETC[1]
    found = other_versions(chosen, QUEEN_ETC, covers=True)
    assert [s.id for s in found] == [3, 7, 4]  # Queen's own versions first (by popularity), then the cover
    assert [s.id for s in other_versions(chosen, QUEEN_ETC, covers=False)] == [3, 7]
    assert other_versions(QUEEN_ETC[0], QUEEN_ETC, covers=True) == ()
    assert same_song(QUEEN_ETC[1], QUEEN_ETC[2]) and not same_song(QUEEN_ETC[1], QUEEN_ETC[3])


def test_a_title_alone_opens_only_when_it_names_one_song() -> None:
    songs = [Song(1, "Enter Sandman", ("Metallica",), 82), Song(2, "Master of Puppets", ("Metallica",), 80)]
    assert _decide("enter sandman", songs).verdict is Verdict.OPEN
    assert _decide("enter sandmann", songs).verdict is Verdict.CHOOSE  # with a typo: offered, not opened
    decision = _decide("bohemian rhapsody")  # Queen's and a cover by John Adams
    assert decision.verdict is Verdict.CHOOSE and [s.id for s in decision.ranked][:3] == [2, 3, 7]
    queen = _decide("queen")  # an artist and a title at once: a choice, the artist's songs first
    assert queen.verdict is Verdict.CHOOSE and queen.ranked[0].artists == ("Queen",)


def test_artist_alone_lists_their_songs_only() -> None:
    decision = _decide("queen")
    assert decision.verdict is Verdict.CHOOSE
    assert {s.id for s in decision.ranked} == {1, 2, 3, 5, 6, 7}  # every song with the word "queen"
    assert _decide("metalica", [Song(1, "One", ("Metallica",)), Song(2, "Metal", ("Other",))]).ranked == (
        Song(1, "One", ("Metallica",)),
    )


@pytest.mark.parametrize("query", ["asdkjh qwpoeiru zzxq", "zzzz qqqq", "qwpoeiru", "uana vvd", "kkt kgna"])
def test_nonsense_gets_nothing(query: str) -> None:
    songs = [*QUEEN_ETC, Song(20, "Nanã", ("Polo & Pan",)), Song(21, "U're Mine", ("Kina",))]
    assert _decide(query, songs) == Decision(Verdict.NONE, ())


def test_weak_matches_are_the_closest_and_the_rest_is_cut() -> None:
    decision = _decide("queen metallica")  # no song by both: Queen's songs come closest
    assert decision.verdict is Verdict.CLOSEST
    assert {s.id for s in decision.ranked} == {2, 3, 6, 7}  # whole artist found; TWICE's "Queen of Hearts" cut
    decision = _decide("bohemian rhapsody acoustic live")
    assert decision.verdict is Verdict.CLOSEST and decision.ranked[0].id in (4, 7)


def test_match_details() -> None:
    m = match("queen bohemain rhapsody", QUEEN_ETC[1])
    assert m.full and m.title and m.artist and m.all_strong and not m.all_exact and m.tier == 0
    m = match("queen bohemian rhapsody", QUEEN_ETC[0])
    assert not m.full and not m.all_found and m.tier == 4
    m = match("master of pup", Song(1, "Master of Puppets", ("Metallica",)))
    assert m.all_found and not m.all_strong and m.tier == 2  # the last word as a prefix
    assert match("kino", QUEEN_ETC[7]).artist


def test_decide_on_nothing() -> None:
    assert _decide("queen", []) == Decision(Verdict.NONE, ())
    assert _decide("", QUEEN_ETC) == Decision(Verdict.NONE, ())
    assert _decide("!!!", QUEEN_ETC) == Decision(Verdict.NONE, ())
