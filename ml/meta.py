"""The metadata side of a genre artefact at run time: evidence tables, outside genre sources, routing.

Files in the artefact folder (written by `ml.meta_train`):
  artists.npz   artist → genre-label counts over every catalogue row (`ml.evidence.CountTable`)
  tokens.npz    title / artist-name token → genre-label counts (same format)
  blend.json    the blend heads' features and weights, the smoothing constants, the class prior

`MetadataBlend.load` reads them once (dicts and CSR arrays in memory; a lookup never scans). For a song,
`evidence_for` collects the counts of its known artists (plus pseudo-counts from Spotify artist genres
or Deezer album genres, mapped by `ml/resources/genre_sources.json`) and the naive-Bayes scores of its
title and artist-name tokens; `route` picks the head; `apply` blends with the audio probabilities.

Routing: `audio_only` → "audio". Otherwise artists given → "audio+artist", or "audio+artist+title" when
the title is given too (a title without artists also goes there, with empty artist evidence). When
nothing given is known (no artist, no token, no outside genre), the answer is the audio head's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.blend import HEAD_ARTIST, HEAD_AUDIO, HEAD_TITLE, ConditionalLogit, Evidence, blend_proba
from ml.evidence import CountTable, artist_keys, artist_name_tokens, normalize, title_tokens

BLEND_FILE = "blend.json"
ARTISTS_FILE = "artists.npz"
TOKENS_FILE = "tokens.npz"
SOURCES_FILE = Path(__file__).parent / "resources" / "genre_sources.json"


@dataclass(frozen=True)
class SongEvidence:
    """What was known about one song (for the answer's 'where the genre comes from')."""

    head: str
    artists_given: int
    artists_known: int
    artist_songs: int  # catalogue rows of the known artists (outside pseudo-counts excluded)
    outside_genres: int  # Spotify / Deezer genres that mapped onto catalogue genres
    title_tokens_known: int

    def describe(self) -> str:
        if self.head == HEAD_AUDIO:
            return "audio"
        parts = []
        if self.artists_known:
            parts.append(
                f"artist ({self.artists_known}/{self.artists_given} known, {self.artist_songs} catalogue songs)"
            )
        elif self.artists_given:
            parts.append("artist name only")
        if self.outside_genres:
            parts.append(f"{self.outside_genres} outside genres")
        if self.head == HEAD_TITLE and self.title_tokens_known:
            parts.append("title")
        return " + ".join(["audio", *parts])


class GenreSources:
    """Spotify artist genres and Deezer album genres → pseudo-counts over the catalogue classes."""

    def __init__(self, classes: Sequence[str], data: Mapping[str, Any]) -> None:
        self.classes = tuple(classes)
        self.pseudo_count = float(data.get("pseudo_count", 3.0))
        index = {c: i for i, c in enumerate(self.classes)}
        self._by_name = {normalize(c.replace("-", " ")): c for c in self.classes}
        self._aliases = {normalize(k): [g for g in v if g in index] for k, v in data.get("spotify_aliases", {}).items()}
        self._deezer = {normalize(k): [g for g in v if g in index] for k, v in data.get("deezer", {}).items()}
        self._index = index

    @classmethod
    def load(cls, classes: Sequence[str], path: Path = SOURCES_FILE) -> GenreSources:
        return cls(classes, json.loads(Path(path).read_text(encoding="utf-8")))

    def spotify_targets(self, genre: str) -> list[str]:
        text = normalize(genre.replace("-", " "))
        if not text:
            return []
        if text in self._aliases:
            return self._aliases[text]
        words = text.split()
        for start in range(len(words)):  # longest trailing phrase naming a catalogue genre
            phrase = " ".join(words[start:])
            if phrase in self._aliases:
                return self._aliases[phrase]
            if phrase in self._by_name:
                return [self._by_name[phrase]]
        return []

    def deezer_targets(self, genre: str) -> list[str]:
        return self._deezer.get(normalize(genre), [])

    def counts(self, spotify: Sequence[str] = (), deezer: Sequence[str] = ()) -> tuple[np.ndarray, int]:
        """(pseudo-counts per class, how many of the given genres mapped)."""
        out = np.zeros(len(self.classes))
        mapped = 0
        for targets in [self.spotify_targets(g) for g in spotify] + [self.deezer_targets(g) for g in deezer]:
            if targets:
                mapped += 1
                for g in targets:
                    out[self._index[g]] += self.pseudo_count / len(targets)
        return out, mapped


class MetadataBlend:
    """Evidence tables + blend heads of one artefact (see the module docstring)."""

    def __init__(
        self,
        classes: Sequence[str],
        artists: CountTable,
        tokens: CountTable,
        config: Mapping[str, Any],
        family_matrix: np.ndarray,
    ) -> None:
        self.classes = tuple(classes)
        if artists.classes != self.classes or tokens.classes != self.classes:
            raise ValueError("evidence tables and model disagree on the classes")
        self.artists = artists
        self.tokens = tokens
        self.config = dict(config)
        self.prior = np.asarray(config["prior"], dtype=np.float64)
        self.alpha_artist = float(config["alpha_artist"])
        self.alpha_tokens = float(config["alpha_tokens"])
        self.family_matrix = family_matrix
        self.heads: dict[str, tuple[tuple[str, ...], ConditionalLogit]] = {
            name: (tuple(h["features"]), ConditionalLogit.from_dict(h["logit"])) for name, h in config["heads"].items()
        }
        self.sources = GenreSources(
            self.classes, config.get("sources") or json.loads(SOURCES_FILE.read_text(encoding="utf-8"))
        )

    @classmethod
    def load(cls, path: Path, classes: Sequence[str], family_matrix: np.ndarray) -> MetadataBlend | None:
        path = Path(path)
        if not (path / BLEND_FILE).exists():
            return None
        config = json.loads((path / BLEND_FILE).read_text(encoding="utf-8"))
        return cls(
            classes, CountTable.load(path / ARTISTS_FILE), CountTable.load(path / TOKENS_FILE), config, family_matrix
        )

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.artists.save(path / ARTISTS_FILE)
        self.tokens.save(path / TOKENS_FILE)
        (path / BLEND_FILE).write_text(json.dumps(self.config, indent=1), encoding="utf-8")

    # --- evidence and routing ---------------------------------------------------------------------

    def evidence_for(
        self,
        artists: Sequence[str | Sequence[str] | None],
        titles: Sequence[str | None],
        spotify_genres: Sequence[Sequence[str]] | None = None,
        deezer_genres: Sequence[Sequence[str]] | None = None,
        audio_only: bool = False,
    ) -> tuple[Evidence, list[SongEvidence]]:
        """Evidence for n songs (artists / titles aligned; None = not given) and the head per song."""
        n = len(artists)
        keys = [artist_keys(a) for a in artists]
        counts = self.artists.lookup_many(keys)
        songs = [round(float(v)) for v in counts.sum(axis=1)]
        outside = np.zeros(n, dtype=np.int64)
        for i in range(n):
            sp = spotify_genres[i] if spotify_genres is not None else ()
            dz = deezer_genres[i] if deezer_genres is not None else ()
            if sp or dz:
                extra, outside[i] = self.sources.counts(sp, dz)
                counts[i] += extra
        name_tok = [artist_name_tokens(a) for a in artists]
        title_tok = [title_tokens(t) for t in titles]
        name_nb, name_known = self.tokens.nb_scores(name_tok, self.prior, self.alpha_tokens)
        title_nb, title_known = self.tokens.nb_scores(title_tok, self.prior, self.alpha_tokens)
        infos = []
        for i in range(n):
            n_known = len(self.artists.known(keys[i]))
            title = titles[i]
            given_title = isinstance(title, str) and bool(title.strip())
            anything = n_known > 0 or outside[i] > 0 or name_known[i] > 0 or (given_title and title_known[i] > 0)
            if audio_only or not anything:
                head = HEAD_AUDIO
            elif given_title:
                head = HEAD_TITLE
            else:
                head = HEAD_ARTIST
            infos.append(
                SongEvidence(
                    head,
                    len(keys[i]),
                    n_known,
                    songs[i],
                    int(outside[i]),
                    int(title_known[i]),
                )
            )
        return Evidence(counts, name_nb, name_known, title_nb, title_known), infos

    def apply(self, audio: np.ndarray, evidence: Evidence, heads: Sequence[str]) -> np.ndarray:
        """Blend each row's audio probabilities with its evidence under its head (audio rows unchanged)."""
        out = np.array(audio, dtype=np.float64, copy=True)
        heads_arr = np.asarray(heads)
        for name, (features, logit) in self.heads.items():
            rows = np.flatnonzero(heads_arr == name)
            if rows.size:
                out[rows] = blend_proba(
                    out[rows], evidence.take(rows), self.prior, self.family_matrix, features, self.alpha_artist, logit
                )
        return out
