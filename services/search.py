"""Catalog fuzzy search: an in-memory word index with typo-tolerant lookups, re-ranked by RapidFuzz,
and the decision that turns its hits into "open this song", "choose", "closest" or "nothing".

Why in memory, and not SQLite FTS5 or PostgreSQL trigrams:
- Encore runs on both SQLite and PostgreSQL. FTS5 and pg_trgm answer differently (FTS5 has no
  typo tolerance at all; trigram similarity needs an extension and a GIN index per deployment),
  so one SQL path would not behave the same on both backends, and tests would need both.
- The catalog is small (~65k songs, a few MB of text), read-mostly, and already loaded at start
  for the recommender. An index in process memory answers in a few milliseconds with no round
  trip, and the same code runs in tests, on SQLite and on PostgreSQL.
- Typos, case and accents: text goes through `services.textnorm.search_text` (case folding,
  accents stripped, apostrophes dropped, any script kept); each query word is matched against
  the vocabulary by exact match, by prefix (the last word, as people type) and by optimal string
  alignment distance (1 edit — a swap counts as one — for words of 4–7 characters, 2 for longer
  ones), looking only at vocabulary words of a similar length that share enough character
  bigrams. Candidates are scored by IDF-weighted word hits (numpy over posting arrays), and the
  best 64 are re-ranked with RapidFuzz's token-set ratio, with a little weight on popularity.
- Scripts: every word not written in ASCII also goes into the index under its Latin spelling
  (`textnorm.ascii_word`, anyascii), and every query word is looked up in both spellings, so
  "кино" finds Kino, "Kino gruppa krovi" finds Kino — Группа крови, and Greek, kana or hangul
  titles can be typed in Latin letters as well.
- Tracks added later (found on Spotify) go in with `add()`; postings grow in place.

The decision (`decide`) is a pure function over the candidates' names and artists, so the bot,
the HTTP API and `bench/bench_search.py` make the same one: a song opens at once when the query's
words cover its title (version marks like "- Remastered 2011" or "(feat. X)" need not be typed)
and one of its artists, allowing one typo per word, in any order, and no query word is left over.

`bench/bench_search.py` measures both on the full 114-genre dataset against its targets.
"""

from __future__ import annotations

import asyncio
import bisect
import enum
import hashlib
import logging
import math
import time
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.repositories import TrackRepository
from ml.recsys import snapshot
from ml.recsys.snapshot import StrColumn
from services.textnorm import ascii_word, search_text, title_core, title_key, transliterate

log = logging.getLogger(__name__)

RERANK = 64
MAX_QUERY_WORDS = 20
MAX_WORD_CHARS = 48
MIN_SCORE = 45.0
RARE_WORD_TRACKS = 30
SNAPSHOT = "search"  # the snapshot folder name under the index folder


def _snapshot_key(tracks: int, top: int) -> str:
    return f"tracks={tracks};max_id={top}"


@dataclass(frozen=True, slots=True)
class SearchRow:
    id: int
    name: str
    artists: str  # ';'-separated
    album: str | None = None
    popularity: int | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    track_id: int
    score: float  # 0..100, higher is better


@dataclass(frozen=True, slots=True)
class IndexedTrack:
    """A hit with what the decision reads (a `Candidate`), straight from the index: no database."""

    id: int
    name: str
    artists: tuple[str, ...]
    popularity: int | None
    score: float = 0.0


def _bigrams(word: str) -> set[str]:
    padded = f"^{word}$"
    return {padded[i : i + 2] for i in range(len(padded) - 1)}


def _allowed_edits(word: str) -> int:
    n = len(word)
    if n < 4:
        return 0
    return 1 if n < 8 else 2


def _title_hash(text: str) -> int:
    """A signed 64-bit hash, the same in every process (Python's hash() is salted): snapshots keep it."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True)


class Postings:
    """Lists of ints (a word's track positions, a bigram's words): a stored CSR part (from a snapshot)
    plus lists grown in memory. `count` and `array` are what searches read."""

    __slots__ = ("_data", "_extra", "_indptr", "_n")

    def __init__(self, indptr: np.ndarray | None = None, data: np.ndarray | None = None) -> None:
        self._indptr = indptr if indptr is not None else np.zeros(1, dtype=np.int64)
        self._data = data if data is not None else np.zeros(0, dtype=np.int64)
        self._n = len(self._indptr) - 1
        self._extra: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return self._n

    def new(self) -> int:
        self._n += 1
        return self._n - 1

    def add(self, i: int, value: int) -> None:
        self._extra.setdefault(i, []).append(value)

    def count(self, i: int) -> int:
        stored = int(self._indptr[i + 1] - self._indptr[i]) if i < len(self._indptr) - 1 else 0
        return stored + len(self._extra.get(i, ()))

    def array(self, i: int) -> np.ndarray:
        stored = self._data[self._indptr[i] : self._indptr[i + 1]] if i < len(self._indptr) - 1 else self._data[:0]
        extra = self._extra.get(i)
        if not extra:
            return np.asarray(stored, dtype=np.int64)
        return np.concatenate([stored, np.asarray(extra, dtype=np.int64)])

    def pack(self) -> tuple[np.ndarray, np.ndarray]:
        arrays = [self.array(i) for i in range(self._n)]
        indptr = np.zeros(self._n + 1, dtype=np.int64)
        np.cumsum([a.size for a in arrays], out=indptr[1:])
        return indptr, (np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64))


def _query_words(query: str) -> list[str]:
    norm = search_text(query[:500])
    return list(dict.fromkeys(w[:MAX_WORD_CHARS] for w in norm.split()))[:MAX_QUERY_WORDS]


class SearchIndex:
    """Fuzzy search over "artists + name". Not thread-safe for writers; searches are synchronous and fast."""

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._texts: list[str] | StrColumn = []  # search_text("artists name")
        self._ascii_texts: dict[int, str] = {}  # position -> Latin spelling, for texts not in ASCII
        self._names: list[str] | StrColumn = []
        self._raw_names: list[str] | StrColumn = []  # as stored, for the decision (`candidates`)
        self._raw_artists: list[str] | StrColumn = []  # ';'-separated, as stored
        self._title_hashes = array("q")  # _title_hash(title_key(name)): versions of a song share it
        self._pop: list[float] = []
        self._alive: list[bool] = []
        self._pos_by_id: dict[int, int] = {}
        self._vocab: dict[str, int] = {}
        self._words: list[str] = []
        self._postings = Postings()  # word index -> track positions
        self._posting_arrays: dict[int, np.ndarray] = {}
        self._grams: dict[str, int] = {}  # padded character bigram -> its row in _gram_words
        self._gram_words = Postings()  # bigram row -> word indices
        self._gram_arrays: dict[str, np.ndarray] = {}
        self._word_lens: np.ndarray | None = None
        self._sorted_words: list[str] | None = None
        self._pop_array: np.ndarray | None = None

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_rows(cls, rows: Iterable[Any]) -> SearchIndex:
        index = cls()
        index.add(rows)
        index._sorted_words = sorted(index._words)  # built once here, then kept sorted by add()
        return index

    @classmethod
    async def load(cls, sessions: async_sessionmaker[AsyncSession], snapshot_dir: Path | None = None) -> SearchIndex:
        """The index of every track in the database (`TrackRepository.search_rows`): from the snapshot
        in `snapshot_dir` when it still fits the tracks up to its highest id (then the tracks stored
        since are added), else built and saved there."""
        if snapshot_dir is not None:
            loaded = await cls._load_snapshot(sessions, snapshot_dir)
            if loaded is not None:
                return loaded
        async with sessions() as session:
            rows = await TrackRepository(session).search_rows()
        index = await asyncio.to_thread(cls.from_rows, rows)  # ~2 s of CPU for 65k tracks: off the loop
        log.info("search index built: %d tracks, %d words", len(index), len(index._words))
        if snapshot_dir is not None:
            await index.save_snapshot(sessions, snapshot_dir)
        return index

    @property
    def max_id(self) -> int:
        return max(self._ids) if self._ids else 0

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        """Add the tracks stored (by any process) since this index's highest id."""
        async with sessions() as session:
            rows = await TrackRepository(session).search_rows_after(self.max_id)
        rows = [r for r in rows if int(r.id) not in self._pos_by_id]  # this process may have added some
        return self.add(rows) if rows else 0

    async def save_snapshot(self, sessions: async_sessionmaker[AsyncSession], root: Path) -> Path | None:
        top = self.max_id
        async with sessions() as session:
            searchable = (await TrackRepository(session).index_counts(top))[3]
        if searchable != len(self._ids):
            log.warning("search snapshot not saved: %d rows in the index, %d in the DB", len(self._ids), searchable)
            return None
        arrays, meta = self.to_arrays()
        meta |= {"key": _snapshot_key(searchable, top), "max_id": top}
        try:
            folder = await asyncio.to_thread(snapshot.save, root, SNAPSHOT, arrays, meta)
        except OSError as exc:
            log.warning("search snapshot not saved in %s: %s", root, exc)
            return None
        log.info("search snapshot saved: %d tracks in %s", len(self), folder)
        return folder

    @classmethod
    async def _load_snapshot(cls, sessions: async_sessionmaker[AsyncSession], root: Path) -> SearchIndex | None:
        started = time.perf_counter()
        meta = await asyncio.to_thread(snapshot.peek, root, SNAPSHOT)
        top = meta.get("max_id") if meta is not None else None
        if not isinstance(top, int):
            log.info("no usable search snapshot in %s: building the index", root)
            return None
        async with sessions() as session:
            searchable = (await TrackRepository(session).index_counts(top))[3]
        try:
            arrays, stored = await asyncio.to_thread(snapshot.load, root, SNAPSHOT, _snapshot_key(searchable, top))
            index = await asyncio.to_thread(cls.from_arrays, arrays, stored)
        except (snapshot.SnapshotError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("search snapshot not used (%s): rebuilding", exc)
            return None
        added = await index.refresh(sessions)
        log.info(
            "search index: %d tracks loaded from the snapshot (%d stored since added) in %.2fs",
            len(index),
            added,
            time.perf_counter() - started,
        )
        return index

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything the index holds as plain arrays and a JSON-able meta (`from_arrays` reverses)."""
        arrays: dict[str, np.ndarray] = {
            "ids": np.asarray(self._ids, dtype=np.int64),
            "title_hashes": np.frombuffer(self._title_hashes, dtype=np.int64),
            "pop": np.asarray(self._pop, dtype=np.float64),
            "alive": np.asarray(self._alive, dtype=bool),
            "ascii_pos": np.asarray(sorted(self._ascii_texts), dtype=np.int64),
            "sorted_words": np.asarray(
                [self._vocab[w] for w in (self._sorted_words or sorted(self._words))], dtype=np.int64
            ),
        }
        columns: dict[str, Iterable[str]] = {
            "texts": self._texts,
            "names": self._names,
            "raw_names": self._raw_names,
            "raw_artists": self._raw_artists,
            "ascii_texts": [self._ascii_texts[p] for p in sorted(self._ascii_texts)],
            "words": self._words,
            "grams": sorted(self._grams, key=self._grams.__getitem__),
        }
        for name, values in columns.items():
            arrays[f"{name}.blob"], arrays[f"{name}.off"] = StrColumn.pack(values)
        arrays["postings.indptr"], arrays["postings.data"] = self._postings.pack()
        arrays["gram_words.indptr"], arrays["gram_words.data"] = self._gram_words.pack()
        return arrays, {"tracks": len(self._ids), "words": len(self._words)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> SearchIndex:
        """The index `to_arrays()` described; the texts stay in the (mapped) arrays until read."""
        index = cls()

        def column(name: str) -> StrColumn:
            return StrColumn(arrays[f"{name}.blob"], arrays[f"{name}.off"])

        index._ids = arrays["ids"].tolist()
        n = len(index._ids)
        index._texts, index._names = column("texts"), column("names")
        index._raw_names, index._raw_artists = column("raw_names"), column("raw_artists")
        index._ascii_texts = dict(zip(arrays["ascii_pos"].tolist(), column("ascii_texts"), strict=True))
        index._title_hashes = array("q", np.asarray(arrays["title_hashes"], dtype=np.int64).tobytes())
        index._pop = arrays["pop"].tolist()
        index._alive = arrays["alive"].tolist()
        index._pos_by_id = {t: i for i, t in enumerate(index._ids) if index._alive[i]}
        index._words = list(column("words"))
        index._vocab = {w: i for i, w in enumerate(index._words)}
        index._sorted_words = [index._words[i] for i in arrays["sorted_words"].tolist()]
        index._postings = Postings(arrays["postings.indptr"], arrays["postings.data"])
        index._grams = {g: i for i, g in enumerate(column("grams"))}
        index._gram_words = Postings(arrays["gram_words.indptr"], arrays["gram_words.data"])
        sizes = {len(index._texts), len(index._names), len(index._raw_names), len(index._raw_artists)}
        sizes |= {len(index._title_hashes), len(index._pop), len(index._alive)}
        if sizes != {n} or n != meta["tracks"] or len(index._words) != meta["words"]:
            raise ValueError(f"search snapshot arrays do not fit together ({sorted(sizes)}, {n} tracks)")
        if len(index._postings) != len(index._words) or len(index._gram_words) != len(index._grams):
            raise ValueError("search snapshot postings do not fit the vocabulary")
        return index

    def __len__(self) -> int:
        return len(self._pos_by_id)

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._pos_by_id

    def add(self, rows: Iterable[Any]) -> int:
        """Add (or replace) tracks: rows with `id`, `name`, `artists`, optional `album`, `popularity`."""
        added = 0
        for row in rows:
            track_id = int(row.id)
            old = self._pos_by_id.get(track_id)
            if old is not None:
                self._alive[old] = False
            pos = len(self._ids)
            artists = " ".join((row.artists or "").split(";"))
            name_norm = search_text(row.name)
            text = f"{search_text(artists)} {name_norm}".strip()
            self._ids.append(track_id)
            self._texts.append(text)
            self._names.append(name_norm)
            self._raw_names.append(str(row.name or ""))
            self._raw_artists.append(str(row.artists or ""))
            core = title_core(row.name)
            self._title_hashes.append(_title_hash(name_norm if core == (row.name or "").strip() else search_text(core)))
            popularity = getattr(row, "popularity", None)
            self._pop.append(float(popularity) if popularity is not None else 0.0)
            self._alive.append(True)
            self._pos_by_id[track_id] = pos
            words = set(text.split())
            if not text.isascii():
                spelled = transliterate(text)
                self._ascii_texts[pos] = spelled
                words.update(spelled.split())
            for word in words:
                widx = self._vocab.get(word)
                if widx is None:
                    widx = len(self._words)
                    self._vocab[word] = widx
                    self._words.append(word)
                    self._postings.new()
                    for gram in _bigrams(word):
                        gid = self._grams.get(gram)
                        if gid is None:
                            gid = self._grams[gram] = self._gram_words.new()
                        self._gram_words.add(gid, widx)
                        self._gram_arrays.pop(gram, None)
                    if self._sorted_words is not None:
                        bisect.insort(self._sorted_words, word)
                    self._word_lens = None
                self._postings.add(widx, pos)
                self._posting_arrays.pop(widx, None)
            added += 1
        if added:
            self._pop_array = None
        return added

    # -- searching --------------------------------------------------------------------------
    def search(self, query: str, limit: int = 10) -> list[SearchHit]:
        words = _query_words(query)
        if not words or not self._ids or limit <= 0:
            return []
        norm = " ".join(words)
        n_docs = len(self._ids)
        total = np.zeros(n_docs, dtype=np.float32)
        matched_any = False
        for i, word in enumerate(words):
            is_last = i == len(words) - 1
            per_word = self._word_scores(word, is_last, n_docs)
            if per_word is not None:
                total += per_word
                matched_any = True
        if not matched_any:
            return []
        total[~self._alive_mask()] = 0.0
        candidates = np.flatnonzero(total > 0)
        if candidates.size > RERANK:
            # Best by word score; popularity breaks ties between equal word scores.
            keyed = total[candidates] + self._popularity()[candidates] * 1e-3
            top = np.argpartition(-keyed, RERANK - 1)[:RERANK]
            candidates = candidates[top]
        max_word = float(total[candidates].max()) if candidates.size else 1.0
        spelled_query = transliterate(norm)
        hits: list[tuple[float, float, int]] = []
        pop = self._popularity()
        for pos in candidates.tolist():
            text = self._texts[pos]
            fuzzy = max(fuzz.token_set_ratio(norm, text), fuzz.ratio(norm, self._names[pos]))
            spelled = self._ascii_texts.get(pos)
            if spelled is not None or spelled_query != norm:
                fuzzy = max(fuzzy, fuzz.token_set_ratio(spelled_query, spelled or text))
            coverage = float(total[pos]) / max_word
            score = 0.7 * fuzzy + 30.0 * coverage
            if score >= MIN_SCORE:
                hits.append((score + pop[pos] / 100.0, score, pos))
        hits.sort(key=lambda h: (-h[0], self._ids[h[2]]))
        return [SearchHit(self._ids[pos], round(min(score, 100.0), 2)) for _, score, pos in hits[:limit]]

    def candidates(self, query: str, limit: int = 32) -> list[IndexedTrack]:
        """`search`, each hit with its name, artists and popularity (what `decide` reads)."""
        return [self.track(h.track_id, h.score) for h in self.search(query, limit)]

    def track(self, track_id: int, score: float = 0.0) -> IndexedTrack:
        pos = self._pos_by_id[track_id]
        artists = tuple(a.strip() for a in self._raw_artists[pos].split(";") if a.strip())
        return IndexedTrack(track_id, self._raw_names[pos], artists, int(self._pop[pos]), score)

    def versions(self, track_id: int, limit: int = 30) -> list[int]:
        """Other tracks with the same title once version marks are dropped (`textnorm.title_key`),
        most popular first: remasters, live takes, covers — and unrelated songs that share a title,
        which `other_versions` sorts out with the artists."""
        pos = self._pos_by_id.get(track_id)
        if pos is None or limit <= 0:
            return []
        same = np.flatnonzero(np.frombuffer(self._title_hashes, dtype=np.int64) == self._title_hashes[pos])
        alive = self._alive_mask()
        same = same[(same != pos) & alive[same]]
        if same.size > limit:
            same = same[np.argsort(-self._popularity()[same], kind="stable")[:limit]]
        else:
            same = same[np.argsort(-self._popularity()[same], kind="stable")]
        return [self._ids[p] for p in same.tolist()]

    def _word_scores(self, word: str, is_last: bool, n_docs: int) -> np.ndarray | None:
        matches: dict[int, float] = {}
        forms = [word]
        spelled = ascii_word(word)
        if spelled and spelled != word:
            forms.append(spelled)
        for form in forms:
            for widx, sim in self._form_matches(form, is_last).items():
                if sim > matches.get(widx, 0.0):
                    matches[widx] = sim
        if not matches:
            for form in forms:
                matches.update(self._overlapping_words(form))
        if not matches:
            return None
        # A word typed exactly as it is in the catalogue weighs at least as much as its near
        # spellings, however rare they are: "love" must not rank "Leve" above "Love".
        exact_idf = [self._idf(widx, n_docs) for widx, sim in matches.items() if sim >= 1.0]
        cap = max(exact_idf) if exact_idf else math.inf
        scores = np.zeros(n_docs, dtype=np.float32)
        for widx, sim in matches.items():
            idf = self._idf(widx, n_docs) if sim >= 1.0 else min(self._idf(widx, n_docs), cap)
            np.maximum.at(scores, self._posting_array(widx), np.float32(idf * sim))
        return scores

    def _idf(self, widx: int, n_docs: int) -> float:
        return math.log(1.0 + n_docs / self._postings.count(widx))

    def distinctive_title(self, name: str) -> bool:
        """Whether a title is rare enough that another artist's song of that title is a cover:
        two words or more, one of them in at most `RARE_WORD_TRACKS` tracks ("Bohemian Rhapsody"
        yes; "Don't Let Me Down", "Intro", "Hallelujah" no)."""
        words = _required(title_key(name).split())
        if len(words) < 2:
            return False
        counts = [self._postings.count(self._vocab[w]) for w in words if w in self._vocab]
        return bool(counts) and min(counts) <= RARE_WORD_TRACKS

    def _form_matches(self, word: str, is_last: bool) -> dict[int, float]:
        matches: dict[int, float] = {}
        exact = self._vocab.get(word)
        if exact is not None:
            matches[exact] = 1.0
        edits = _allowed_edits(word)
        if edits:
            pool = self._near_words(word, edits)
            for cand, dist, _ in process.extract(word, pool, scorer=OSA.distance, score_cutoff=edits, limit=8):
                widx = self._vocab[cand]
                matches.setdefault(widx, 1.0 - 0.25 * dist)
        if is_last and len(word) >= 3:
            for cand in self._prefixed(word, 16):
                matches.setdefault(self._vocab[cand], 0.8)
        return matches

    def _near_words(self, word: str, edits: int) -> list[str]:
        """Vocabulary words that may be within `edits` edits: the q-gram lemma as a filter.

        A substitution or deletion destroys at most two padded bigrams and a transposition three,
        so a word within k edits shares at least (bigrams - 3k) of them; counting shared bigrams
        is one numpy bincount.
        """
        grams = _bigrams(word)
        arrays = [self._gram_array(g) for g in grams if g in self._grams]
        if not arrays:
            return []
        counts = np.bincount(np.concatenate(arrays), minlength=len(self._words))
        need = max(1, len(grams) - 3 * edits)
        lens = self._lengths()
        idx = np.flatnonzero((counts >= need) & (np.abs(lens - len(word)) <= edits))
        return [self._words[i] for i in idx.tolist()]

    def _overlapping_words(self, word: str, limit: int = 16) -> dict[int, float]:
        """Vocabulary words sharing most of their bigrams with `word`: parts of an unspaced query
        (CJK, Thai: "ヨルシカ言って") or words with more typos than the edit budget."""
        grams = _bigrams(word)
        arrays = [self._gram_array(g) for g in grams if g in self._grams]
        if not arrays:
            return {}
        counts = np.bincount(np.concatenate(arrays), minlength=len(self._words))
        ratio = counts / np.maximum(np.minimum(self._lengths() + 1, len(grams)), 1)
        idx = np.flatnonzero((counts >= 3) & (ratio >= 0.7))
        if idx.size > limit:
            idx = idx[np.argsort(-ratio[idx], kind="stable")[:limit]]
        return {int(i): 0.6 * float(min(1.0, ratio[i])) for i in idx}

    def _gram_array(self, gram: str) -> np.ndarray:
        arr = self._gram_arrays.get(gram)
        if arr is None:
            arr = self._gram_words.array(self._grams[gram])
            self._gram_arrays[gram] = arr
        return arr

    def _lengths(self) -> np.ndarray:
        if self._word_lens is None or self._word_lens.size != len(self._words):
            self._word_lens = np.fromiter((len(w) for w in self._words), dtype=np.int64, count=len(self._words))
        return self._word_lens

    def _prefixed(self, prefix: str, limit: int) -> list[str]:
        if self._sorted_words is None:
            self._sorted_words = sorted(self._words)
        words = self._sorted_words
        out: list[str] = []
        i = bisect.bisect_left(words, prefix)
        while i < len(words) and len(out) < limit and words[i].startswith(prefix):
            if words[i] != prefix:
                out.append(words[i])
            i += 1
        return out

    def _posting_array(self, widx: int) -> np.ndarray:
        arr = self._posting_arrays.get(widx)
        if arr is None:
            arr = self._postings.array(widx)
            self._posting_arrays[widx] = arr
        return arr

    def _popularity(self) -> np.ndarray:
        if self._pop_array is None or self._pop_array.size != len(self._pop):
            self._pop_array = np.asarray(self._pop, dtype=np.float32)
        return self._pop_array

    def _alive_mask(self) -> np.ndarray:
        if len(self._alive) == len(self._pos_by_id):
            return np.ones(len(self._alive), dtype=bool)
        return np.asarray(self._alive, dtype=bool)


def rows_from_tuples(rows: Sequence[tuple[int, str, str, str | None, int | None]]) -> list[SearchRow]:
    return [SearchRow(*r) for r in rows]


# -- the decision ---------------------------------------------------------------------------------

# Words a query or a title may carry or leave out without changing the song ("the", "feat", "by");
# single letters ("P!nk" → "p nk", "Guns N' Roses") are optional the same way.
FILLER_WORDS = frozenset({"the", "a", "an", "and", "by", "feat", "ft", "featuring", "with", "vs", "x"})
# Version words a person asks for explicitly; a version carrying one they did not ask for comes
# after the plain recording when both match.
VERSION_WORDS = frozenset(
    {"live", "remix", "mix", "acoustic", "instrumental", "karaoke", "cover", "demo", "edit", "sped", "slowed"}
)
STRONG = 0.8  # a word matched exactly or within its typo budget
EXPLAINED = 0.7  # … or the last word as a prefix ("master of pup")
WEAK_SHARE = 0.6  # "closest": at least this share of the query's letters found in one candidate …
FIELD_SHARE = 0.25  # … or a whole artist or title found, and at least this share
FIELD_MIN_LETTERS = 4  # (typed exactly; FIELD_TYPO_LETTERS with typos)
FIELD_TYPO_LETTERS = 7
MAX_ALTERNATIVES = 5


class Candidate(Protocol):
    """What the decision reads from a track (`TrackInfo` is one)."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def artists(self) -> tuple[str, ...]: ...
    @property
    def popularity(self) -> int | None: ...


C = TypeVar("C", bound=Candidate)


class Verdict(enum.StrEnum):
    OPEN = "open"  # one song: open its card
    CHOOSE = "choose"  # several candidates contain every word of the query
    CLOSEST = "closest"  # no candidate contains every word; these come closest
    NONE = "none"  # nothing relevant


@dataclass(frozen=True, slots=True)
class Match:
    """How one candidate answers a query."""

    full: bool  # every query word found (typos allowed), the title and one artist covered
    title: bool  # the whole title (without version marks) covered
    artist: bool  # one whole artist covered
    all_strong: bool  # every query word found exactly or within its typo budget
    all_found: bool  # … or the last one as a prefix
    all_exact: bool  # every query word found exactly (in either script)
    share: float  # share of the query's letters found, 0..1
    field_letters: int  # letters of the longest whole title or artist covered (0: none)
    quality: float  # sum of the word strengths (exact 1.0, one typo 0.9 …)
    unasked_version: bool  # a version word ("live", "remix") the query did not ask for
    title_size: int = 0  # words in the title without version marks (fewer: a closer fit)

    @property
    def tier(self) -> int:
        """0 full match, 1 every word found and a whole title or artist, 2 every word found,
        3 close (most letters found, or a whole title or artist and a quarter of them), 4 cut."""
        if self.full:
            return 0
        if self.all_found and (self.title or self.artist):
            return 1
        if self.all_found:
            return 2
        if self.share >= WEAK_SHARE or (self.field_letters >= FIELD_MIN_LETTERS and self.share >= FIELD_SHARE):
            return 3
        return 4


@dataclass(frozen=True, slots=True)
class Decision(Generic[C]):
    verdict: Verdict
    ranked: tuple[C, ...]  # best first; for OPEN the first is the song to open


@dataclass(frozen=True, slots=True)
class _QueryWord:
    text: str
    spelled: str  # Latin spelling (`textnorm.ascii_word`)
    last: bool
    significant: bool  # not a filler word


@dataclass(frozen=True, slots=True)
class _Shape:
    """A candidate's words, worked out once per (name, artists)."""

    title_words: tuple[str, ...]
    core_words: tuple[str, ...]  # the title without version marks, fillers left out
    artists: tuple[tuple[str, ...], ...]  # each artist's words, fillers left out
    joined: tuple[str, ...]  # multi-word artists written as one word ("acdc", "tatu")
    vocabulary: tuple[str, ...]


def _spelled(word: str) -> str:
    return ascii_word(word) or word


def _required(words: Iterable[str]) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(words))
    needed = tuple(w for w in unique if w not in FILLER_WORDS and len(w) > 1)
    return needed or unique


@lru_cache(maxsize=4096)  # ~1.1 KiB each (4.7 MiB full); one costs ~17 µs to work out again
def _shape(name: str, artists: tuple[str, ...]) -> _Shape:
    title_words = tuple(search_text(name).split())
    core_words = _required(title_key(name).split() or title_words)
    artist_words = [tuple(search_text(a).split()) for a in artists]
    joined = tuple("".join(words) for words in artist_words if len(words) > 1)
    vocabulary = tuple(dict.fromkeys([*title_words, *(w for ws in artist_words for w in ws), *joined]))
    return _Shape(title_words, core_words, tuple(_required(ws) for ws in artist_words if ws), joined, vocabulary)


def _prepare_query(query: str) -> list[_QueryWord]:
    words = _query_words(query)
    significant = [w not in FILLER_WORDS and len(w) > 1 for w in words]
    if not any(significant):
        significant = [True] * len(words)
    return [
        _QueryWord(w, _spelled(w), i == len(words) - 1, sig)
        for i, (w, sig) in enumerate(zip(words, significant, strict=True))
    ]


def _strengths(qwords: Sequence[_QueryWord], vocabulary: Sequence[str]) -> np.ndarray:
    """How well each query word matches each candidate word (query words × vocabulary):
    1 exact (in either script), 0.9 per typo within the word's budget (0.8 for two), 0.7 the last
    query word as a prefix, up to 0.6 when merely similar (RapidFuzz ratio ≥ 75), else 0."""
    spelled = [_spelled(w) for w in vocabulary]
    texts = [q.text for q in qwords]
    latin = [q.spelled for q in qwords]
    out = np.zeros((len(qwords), len(vocabulary)), dtype=np.float64)
    if not vocabulary:
        return out
    budgets = np.array([_allowed_edits(t) for t in texts], dtype=np.float64)[:, None]
    latin_budgets = np.array([_allowed_edits(t) for t in latin], dtype=np.float64)[:, None]
    for a, b, budget in ((texts, vocabulary, budgets), (latin, spelled, latin_budgets)):
        distance = process.cdist(a, b, scorer=OSA.distance, dtype=np.int32, workers=1)
        typo = np.where((distance <= budget) & ((budget > 0) | (distance == 0)), 1.0 - 0.1 * distance, 0.0)
        out = np.maximum(out, typo)
    similar = process.cdist(latin, spelled, scorer=fuzz.ratio, dtype=np.float64, workers=1) / 100.0
    long_enough = np.array([len(t) >= 5 for t in latin])[:, None]
    out = np.maximum(out, np.where(long_enough & (similar >= 0.75), 0.6 * similar, 0.0))
    for i, q in enumerate(qwords):
        if q.last and len(q.text) >= 3:
            for j, (word, sp) in enumerate(zip(vocabulary, spelled, strict=True)):
                if out[i, j] < EXPLAINED and (word.startswith(q.text) or sp.startswith(q.spelled)):
                    out[i, j] = EXPLAINED
    return out


def _field_letters(words: Sequence[str], covered: Mapping[str, float]) -> int:
    """Letters of a covered title or artist, as evidence for a "closest" answer: a short one counts
    only when typed exactly (random letters are often one typo away from some four-letter name)."""
    letters = sum(len(w) for w in words)
    exact = all(covered.get(w, 0.0) >= 1.0 for w in words)
    return letters if exact or letters >= FIELD_TYPO_LETTERS else 0


def _match(qwords: Sequence[_QueryWord], shape: _Shape, table: np.ndarray, column: Mapping[str, int]) -> Match:
    sub = table[:, [column[w] for w in shape.vocabulary]] if shape.vocabulary else np.zeros((len(qwords), 1))
    best = sub.max(axis=1)
    covered = dict(zip(shape.vocabulary, sub.max(axis=0).tolist(), strict=False)) if shape.vocabulary else {}
    significant = [(q, float(s)) for q, s in zip(qwords, best.tolist(), strict=True) if q.significant]
    letters = sum(len(q.text) for q, _ in significant) or 1
    all_strong = all(s >= STRONG for _, s in significant)
    title = all(covered.get(w, 0.0) >= STRONG for w in shape.core_words)
    field_letters = _field_letters(shape.core_words, covered) if title else 0
    artist = False
    for words in (*shape.artists, *((j,) for j in shape.joined)):
        if all(covered.get(w, 0.0) >= STRONG for w in words):
            artist = True
            field_letters = max(field_letters, _field_letters(words, covered))
    asked = {q.text for q in qwords}
    return Match(
        full=all_strong and title and artist,
        title=title,
        artist=artist,
        all_strong=all_strong,
        all_found=all(s >= EXPLAINED for _, s in significant),
        all_exact=all(s >= 1.0 for _, s in significant),
        share=sum(len(q.text) * s for q, s in significant) / letters,
        field_letters=field_letters,
        quality=float(best.sum()),
        unasked_version=any(w in VERSION_WORDS and w not in asked for w in shape.title_words),
        title_size=len(shape.core_words),
    )


def _score(qwords: Sequence[_QueryWord], candidates: Sequence[Candidate]) -> list[Match]:
    shapes = [_shape(c.name, tuple(c.artists)) for c in candidates]
    vocabulary = list(dict.fromkeys(w for s in shapes for w in s.vocabulary))
    table = _strengths(qwords, vocabulary)
    column = {w: i for i, w in enumerate(vocabulary)}
    return [_match(qwords, s, table, column) for s in shapes]


def match(query: str, candidate: Candidate) -> Match:
    """How one candidate answers a query (pure; `decide` does this for all of them at once)."""
    qwords = _prepare_query(query)
    return _score(qwords, [candidate])[0]


def _artist_set(candidate: Candidate) -> set[str]:
    return {search_text(a) for a in candidate.artists} - {""}


def same_song(a: Candidate, b: Candidate) -> bool:
    """The same title (without version marks) and at least one artist in common."""
    return title_key(a.name) == title_key(b.name) and bool(_artist_set(a) & _artist_set(b))


def other_versions(chosen: C, pool: Iterable[C], *, covers: bool, limit: int = MAX_ALTERNATIVES) -> tuple[C, ...]:
    """Other versions of `chosen` in `pool`: the same title without version marks by one of its
    artists (remasters, live takes, other releases) and, when `covers` (the title is distinctive
    enough that sharing it means the same song: `SearchIndex.distinctive_title`), by other
    artists; its own artists first, then by popularity."""
    key = title_key(chosen.name)
    if not key:
        return ()
    mine = _artist_set(chosen)
    seen = {chosen.id}
    found: list[tuple[int, int, int, C]] = []
    for order, track in enumerate(pool):
        if track.id in seen or title_key(track.name) != key:
            continue
        shared = bool(mine & _artist_set(track))
        if not shared and not covers:
            continue
        seen.add(track.id)
        found.append((0 if shared else 1, -(track.popularity or 0), order, track))
    found.sort(key=lambda f: f[:3])
    return tuple(f[3] for f in found[:limit])


def decide(query: str, candidates: Sequence[C], *, limit: int = 20) -> Decision[C]:
    """What to answer for `query` given the candidates (best first, as the index or Spotify ranked them).

    - OPEN when one song is fully matched: the query's words cover its title (version marks need
      not be typed) and one of its artists, with one typo per word at most and nothing left over
      (`Match.full`), and no other song is matched as well (as many words, as exactly, with a
      title as short). Among that song's versions the better word match, then one without a
      version word the query did not ask for ("- Live"), then popularity decide which opens.
      A title typed alone, exactly, opens when it names one song and no artist of that name is
      among the candidates.
    - CHOOSE when some candidates contain every word of the query: only those, best match first.
    - CLOSEST when none does but some come close (`Match.tier` 3); the others are cut.
    - NONE otherwise: nothing relevant.
    """
    limit = max(1, limit)
    qwords = _prepare_query(query)
    if not qwords or not candidates:
        return Decision(Verdict.NONE, ())
    scored = list(zip(_score(qwords, candidates), range(len(candidates)), candidates, strict=True))

    def key(item: tuple[Match, int, C]) -> tuple[bool, float, int, int, bool, int, int]:
        m, order, c = item
        size = m.title_size if m.full else 0
        return (not m.full, -round(m.quality, 3), size, m.tier, m.unasked_version, -(c.popularity or 0), order)

    ranked = sorted(scored, key=key)
    full = [s for s in ranked if s[0].full]
    if full:
        # A rival is another song matched just as well and as closely: "Einaudi: Una mattina" is
        # no rival to "Una Mattina" for "ludovico einaudi una mattina" (its extra word is the artist's).
        best_m, _, best = full[0]
        if not any(
            round(m.quality, 3) == round(best_m.quality, 3)
            and m.title_size == best_m.title_size
            and not same_song(best, c)
            for m, _, c in full[1:]
        ):
            return Decision(Verdict.OPEN, tuple(c for _, _, c in ranked)[:limit])
    else:
        titled = [s for s in ranked if s[0].title and s[0].all_exact]
        named = any(m.artist and m.all_found for m, _, _ in scored)
        if titled and not named:
            best = titled[0][2]
            if all(same_song(best, c) for _, _, c in titled[1:]):
                return Decision(Verdict.OPEN, (best, *(c for _, _, c in ranked if c is not best))[:limit])
    if ranked[0][0].tier <= 2:
        return Decision(Verdict.CHOOSE, tuple(c for m, _, c in ranked if m.tier <= 2)[:limit])
    close = tuple(c for m, _, c in ranked if m.tier == 3)
    if close:
        return Decision(Verdict.CLOSEST, close[:limit])
    return Decision(Verdict.NONE, ())
