"""Metadata evidence for the genre model: what a song's artists and title say about its genre.

Two kinds of count tables, both `key → genre-label counts` over catalogue rows:
  * artists: the song's artists (split on ';', normalised like `services.textnorm.normalize`);
  * tokens: words of the title and its scripts (Hangul, Devanagari, kana, Cyrillic …), and words and
    scripts of the artist names (a new artist named "Lil …" or written in Hangul still says something).

`CountTable.build` makes a table once (the artefact stores it; the predictor loads it into memory at
start, so a lookup is a dict access and a few sparse rows, never a scan). `CountTable.leave_group_out`
gives, for each catalogue row, the evidence the rest of the catalogue holds about it: the table's sums
over the row's keys minus what the row's own duplicate group contributed. Training, validation and
test rows all get their evidence that way, so a song's own labels never count towards it (see
SOURCES.md: "Labels follow the artist").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)

# unicodedata name prefixes → script token (the first word of a letter's Unicode name)
_SCRIPT_NAMES: dict[str, str] = {
    "HANGUL": "hangul",
    "HIRAGANA": "kana",
    "KATAKANA": "kana",
    "CJK": "han",
    "DEVANAGARI": "devanagari",
    "BENGALI": "indic",
    "GURMUKHI": "indic",
    "GUJARATI": "indic",
    "TAMIL": "indic",
    "TELUGU": "indic",
    "KANNADA": "indic",
    "MALAYALAM": "indic",
    "ORIYA": "indic",
    "CYRILLIC": "cyrillic",
    "ARABIC": "arabic",
    "HEBREW": "hebrew",
    "GREEK": "greek",
    "THAI": "thai",
    "ARMENIAN": "armenian",
    "GEORGIAN": "georgian",
    "LATIN": "latin",
}


def normalize(text: str | None) -> str:
    """Lower-case, strip accents, keep letters and digits of any script, single spaces.

    The same function as `services.textnorm.normalize` (ml never imports services; a test checks
    that the two agree).
    """
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", stripped.casefold()).strip()


def artist_keys(artists: str | Sequence[str] | None) -> list[str]:
    """Normalised artist names of a song ('A;B' or a sequence), unique, in order."""
    if artists is None or (isinstance(artists, float) and np.isnan(artists)):
        return []
    parts = artists.split(";") if isinstance(artists, str) else list(artists)
    out: list[str] = []
    for part in parts:
        key = normalize(str(part))
        if key and key not in out:
            out.append(key)
    return out


@lru_cache(maxsize=8192)
def _script_of(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    try:
        first = unicodedata.name(ch).split(" ", 1)[0]
    except ValueError:
        return None
    return _SCRIPT_NAMES.get(first, "other")


def scripts(text: str) -> set[str]:
    """The writing systems of the letters in `text` ('hangul', 'kana', 'han', 'cyrillic', 'latin' …)."""
    return {script for ch in text if (script := _script_of(ch)) is not None}


def _marked_letters(text: str) -> set[str]:
    """Latin letters carrying a diacritic (ñ, ç, ã, ø, ß …): cheap language hints."""
    out = set()
    for ch in text.casefold():
        if ch.isalpha() and not ch.isascii() and unicodedata.name(ch, "").startswith("LATIN"):
            out.add(ch)
    return out


def text_tokens(text: str | None, prefix: str) -> list[str]:
    """Tokens of one text: its words, scripts and diacritic letters, each under `prefix`."""
    if not isinstance(text, str) or not text.strip():
        return []
    tokens = {f"{prefix}w:{w}" for w in normalize(text).split() if len(w) > 1 or not w.isascii()}
    tokens |= {f"{prefix}s:{s}" for s in scripts(text)}
    tokens |= {f"{prefix}c:{c}" for c in _marked_letters(text)}
    return sorted(tokens)


def title_tokens(title: str | None) -> list[str]:
    return text_tokens(title, "t")


def artist_name_tokens(artists: str | Sequence[str] | None) -> list[str]:
    if artists is None or (isinstance(artists, float) and np.isnan(artists)):
        return []
    text = " ; ".join(artists.split(";") if isinstance(artists, str) else [str(a) for a in artists])
    return text_tokens(text, "a")


@dataclass(frozen=True)
class CountTable:
    """key → counts of each class over catalogue rows (one count per row carrying the key)."""

    classes: tuple[str, ...]
    keys: tuple[str, ...]
    counts: sparse.csr_matrix  # (len(keys), len(classes)) float32
    index: dict[str, int]
    # the CSR arrays as plain numpy (a one-song lookup reads them directly)
    _indptr: np.ndarray = field(init=False, repr=False, compare=False)
    _indices: np.ndarray = field(init=False, repr=False, compare=False)
    _data: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        c = self.counts.tocsr()
        object.__setattr__(self, "_indptr", np.asarray(c.indptr))
        object.__setattr__(self, "_indices", np.asarray(c.indices))
        object.__setattr__(self, "_data", np.asarray(c.data, dtype=np.float64))

    @classmethod
    def build(
        cls, key_lists: Sequence[Sequence[str]], labels: Sequence[str] | np.ndarray, classes: Sequence[str]
    ) -> CountTable:
        pairs_row, pair_key, vocab = _explode(key_lists)
        y = _label_index(labels, classes)
        counts = sparse.csr_matrix(
            (np.ones(len(pairs_row), dtype=np.float32), (pair_key, y[pairs_row])),
            shape=(len(vocab), len(classes)),
        )
        counts.sum_duplicates()
        return cls(tuple(classes), tuple(vocab), counts, {k: i for i, k in enumerate(vocab)})

    def lookup(self, keys: Iterable[str]) -> np.ndarray:
        """Summed class counts of the known keys (zeros when none is known). A few dict and array
        accesses: no scan, no sparse-matrix construction."""
        out = np.zeros(len(self.classes))
        indptr, indices, data = self._indptr, self._indices, self._data
        for k in dict.fromkeys(keys):
            j = self.index.get(k)
            if j is not None:
                s, e = indptr[j], indptr[j + 1]
                out[indices[s:e]] += data[s:e]
        return out

    def lookup_many(self, key_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """(n, classes) summed counts, one row per key list."""
        out = np.zeros((len(key_lists), len(self.classes)))
        for i, keys in enumerate(key_lists):
            out[i] = self.lookup(keys)
        return out

    def known(self, keys: Iterable[str]) -> list[str]:
        return [k for k in keys if k in self.index]

    def prior(self) -> np.ndarray:
        """Class shares over all counted rows (smoothed, never 0)."""
        total = np.asarray(self.counts.sum(axis=0), dtype=np.float64).ravel() + 1.0
        return total / total.sum()

    def nb_scores(
        self, key_lists: Sequence[Sequence[str]], prior: np.ndarray, alpha: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per key list: (sum over known keys of the smoothed log-likelihood ratio per class, keys known).

        For a key with counts n (total N): log((n_c + α·π_c) / (N + α)) − log π_c.
        """
        out = np.zeros((len(key_lists), len(self.classes)))
        known = np.zeros(len(key_lists))
        indptr, indices, data = self._indptr, self._indices, self._data
        smooth = alpha * np.asarray(prior, dtype=np.float64)
        log_prior = np.log(prior)
        for i, keys in enumerate(key_lists):
            ids = [j for j in (self.index.get(k) for k in dict.fromkeys(keys)) if j is not None]
            if not ids:
                continue
            dense = np.zeros((len(ids), len(self.classes)))
            for r, j in enumerate(ids):
                s, e = indptr[j], indptr[j + 1]
                dense[r, indices[s:e]] = data[s:e]
            total = dense.sum(axis=1, keepdims=True)
            out[i] = (np.log(dense + smooth) - np.log(total + alpha) - log_prior).sum(axis=0)
            known[i] = len(ids)
        return out, known

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        c = self.counts.tocsr()
        with Path(path).open("wb") as fh:
            np.savez_compressed(
                fh,
                classes=np.asarray(self.classes),
                keys=np.asarray(self.keys, dtype=object).astype(str),
                indptr=c.indptr.astype(np.int32),
                indices=c.indices.astype(np.int16),
                data=c.data.astype(np.float32),
            )

    @classmethod
    def load(cls, path: Path) -> CountTable:
        with np.load(Path(path), allow_pickle=False) as z:
            classes = tuple(str(c) for c in z["classes"])
            keys = tuple(str(k) for k in z["keys"])
            counts = sparse.csr_matrix(
                (z["data"].astype(np.float32), z["indices"].astype(np.int32), z["indptr"].astype(np.int64)),
                shape=(len(keys), len(classes)),
            )
        return cls(classes, keys, counts, {k: i for i, k in enumerate(keys)})

    # --- honest evidence for catalogue rows ------------------------------------------------------

    @staticmethod
    def leave_group_out(
        key_lists: Sequence[Sequence[str]],
        labels: Sequence[str] | np.ndarray,
        groups: np.ndarray,
        classes: Sequence[str],
    ) -> np.ndarray:
        """(n, classes): per row, the counts over its keys of every row *outside its duplicate group*.

        Equal to `build(...).lookup(keys_i)` minus the contribution of row i's own group, computed for
        all rows at once with sparse products.
        """
        n = len(key_lists)
        groups = np.asarray(groups, dtype=np.int64)
        pair_row, pair_key, vocab = _explode(key_lists)
        y = _label_index(labels, classes)
        n_classes = len(classes)
        if len(pair_row) == 0:
            return np.zeros((n, n_classes))
        totals = sparse.csr_matrix((np.ones(len(pair_row)), (pair_key, y[pair_row])), shape=(len(vocab), n_classes))
        incidence = sparse.csr_matrix((np.ones(len(pair_row)), (pair_row, pair_key)), shape=(n, len(vocab)))
        full = incidence @ totals
        # the own group's contribution: counts per (key, group), fetched for each (row, key) pair
        kg = pair_key.astype(np.int64) * (int(groups.max()) + 1) + groups[pair_row]
        _, kg_id = np.unique(kg, return_inverse=True)
        own = sparse.csr_matrix((np.ones(len(pair_row)), (kg_id, y[pair_row])), shape=(int(kg_id.max()) + 1, n_classes))
        pick = sparse.csr_matrix((np.ones(len(pair_row)), (pair_row, kg_id)), shape=(n, own.shape[0]))
        out = np.asarray((full - pick @ own).todense(), dtype=np.float64)
        out[out < 1e-9] = 0.0
        return out

    @staticmethod
    def leave_group_out_nb(
        key_lists: Sequence[Sequence[str]],
        labels: Sequence[str] | np.ndarray,
        groups: np.ndarray,
        classes: Sequence[str],
        prior: np.ndarray,
        alpha: float,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`nb_scores` per row with every key's counts taken without the row's own duplicate group."""
        n = len(key_lists)
        groups = np.asarray(groups, dtype=np.int64)
        pair_row, pair_key, vocab = _explode(key_lists)
        y = _label_index(labels, classes)
        n_classes = len(classes)
        if len(pair_row) == 0:
            return np.zeros((n, n_classes)), np.zeros(n)
        totals = sparse.csr_matrix((np.ones(len(pair_row)), (pair_key, y[pair_row])), shape=(len(vocab), n_classes))
        kg = pair_key.astype(np.int64) * (int(groups.max()) + 1) + groups[pair_row]
        _, kg_id = np.unique(kg, return_inverse=True)
        own = sparse.csr_matrix((np.ones(len(pair_row)), (kg_id, y[pair_row])), shape=(int(kg_id.max()) + 1, n_classes))
        pair_counts = (totals[pair_key] - own[kg_id]).tocsr()
        return _nb_reduce(pair_row, pair_counts, n, prior, alpha)


def _nb_reduce(
    pair_row: np.ndarray, pair_counts: sparse.csr_matrix, n: int, prior: np.ndarray, alpha: float, chunk: int = 20_000
) -> tuple[np.ndarray, np.ndarray]:
    """Σ over each row's pairs of log((n_c + α·π_c) / (N + α)) − log π_c, skipping pairs with N = 0."""
    out = np.zeros((n, len(prior)))
    known = np.zeros(n)
    log_prior = np.log(prior)
    for start in range(0, len(pair_row), chunk):
        dense = np.asarray(pair_counts[start : start + chunk].todense(), dtype=np.float64)
        dense[dense < 1e-9] = 0.0
        total = dense.sum(axis=1, keepdims=True)
        ok = total[:, 0] > 0
        ratio = np.log(dense + alpha * prior) - np.log(total + alpha) - log_prior
        rows = pair_row[start : start + chunk][ok]
        np.add.at(out, rows, ratio[ok])
        np.add.at(known, rows, 1.0)
    return out, known


def _explode(key_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    vocab: dict[str, int] = {}
    rows: list[int] = []
    keys: list[int] = []
    for i, ks in enumerate(key_lists):
        for k in dict.fromkeys(ks):
            rows.append(i)
            keys.append(vocab.setdefault(k, len(vocab)))
    return np.asarray(rows, dtype=np.int64), np.asarray(keys, dtype=np.int64), list(vocab)


def _label_index(labels: Sequence[str] | np.ndarray, classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    try:
        return np.asarray([index[str(label)] for label in labels], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not one of the classes") from None
