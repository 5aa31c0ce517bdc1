"""Metadata heads: routing, blending with the catalogue's artist and title evidence, artefact files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml.blend import HEAD_ARTIST, HEAD_AUDIO, HEAD_TITLE
from ml.features import rows_to_matrix
from ml.meta import SOURCES_FILE, GenreSources
from ml.predictor import GenrePredictor
from tests.ml.conftest import CATALOG_GENRES
from tests.ml.test_features import GOOD


@pytest.fixture(scope="module")
def catalog(trained_models: Path) -> GenrePredictor:
    return GenrePredictor.load(trained_models / "catalog")


def test_catalog_artefact_carries_the_metadata_heads(trained_models: Path, catalog: GenrePredictor) -> None:
    folder = trained_models / "catalog"
    for name in ("blend.json", "artists.npz", "tokens.npz"):
        assert (folder / name).stat().st_size > 0
    meta = json.loads((folder / "meta.json").read_text())
    assert set(meta["metadata"]["heads"]) == {HEAD_AUDIO, HEAD_ARTIST, HEAD_TITLE}
    assert catalog.metadata_heads == (HEAD_ARTIST, HEAD_TITLE)
    # the seed task has no artists or titles: no metadata heads
    seed = GenrePredictor.load(trained_models / "seed6")
    assert seed.metadata_heads == () and not (trained_models / "seed6" / "blend.json").exists()
    assert seed.predict_one(GOOD, artists="Artist 2-3").head == HEAD_AUDIO


def test_no_metadata_is_the_audio_model_unchanged(catalog: GenrePredictor) -> None:
    plain = catalog.predict_one(GOOD)
    assert plain.head == HEAD_AUDIO and plain.evidence == "audio"
    proba = catalog.predict_proba(rows_to_matrix([GOOD]))[0]
    assert plain.probability == pytest.approx(float(proba.max()))
    forced = catalog.predict_one(GOOD, artists="Artist 2-3", title="Song 2-5", audio_only=True)
    assert forced.head == HEAD_AUDIO
    assert (forced.genre, forced.probability) == (plain.genre, plain.probability)


def test_routing_by_what_is_given(catalog: GenrePredictor) -> None:
    artist = catalog.predict_one(GOOD, artists="Artist 2-3")
    assert artist.head == HEAD_ARTIST and artist.artists_known == 1
    assert "artist (1/1 known" in artist.evidence
    both = catalog.predict_one(GOOD, artists="Artist 2-3;Somebody New", title="Song 2-5")
    assert both.head == HEAD_TITLE and both.artists_known == 1 and both.evidence.endswith("+ title")
    title_only = catalog.predict_one(GOOD, title="Song 4-1")
    assert title_only.head == HEAD_TITLE and title_only.artists_known == 0
    # nothing given is known (new words, a script the catalogue never had) → the audio answer
    unknown = catalog.predict_one(GOOD, artists="Совсем Новый")
    assert unknown.head == HEAD_AUDIO
    assert unknown.probability == pytest.approx(catalog.predict_one(GOOD).probability)


def _p(pred: object, genre: str) -> float:
    return dict(pred.top).get(genre, 0.0)  # type: ignore[attr-defined]


def test_known_artist_moves_the_answer_towards_its_genre(catalog: GenrePredictor) -> None:
    # the generated catalogue files every song of "Artist <g>-<k>" under genre g; the fixed audio
    # vector GOOD sounds like one genre to the audio model, so the artist's genre must gain
    audio = catalog.predict_one(GOOD)
    for gi, genre in enumerate(CATALOG_GENRES):
        pred = catalog.predict_one(GOOD, artists=f"Artist {gi}-4", title=f"Song {gi}-7")
        assert genre in [g for g, _ in pred.top], (gi, pred)
        if genre != audio.genre:
            assert _p(pred, genre) > _p(audio, genre), (gi, pred)
        assert sum(p for _, p in pred.top) <= 1.0 + 1e-9
    # audio features of the artist's own genre: the blend agrees
    from tests.ml.conftest import make_catalog_frame

    frame = make_catalog_frame()
    row = frame[frame["track_genre"] == "jazz"].iloc[20]
    pred = catalog.predict_one(row.to_dict(), artists=row["artists"], title=row["track_name"])
    assert pred.genre == "jazz" and pred.head == HEAD_TITLE


def test_batch_and_one_agree(catalog: GenrePredictor) -> None:
    rows = [GOOD, {**GOOD, "energy": 0.2}, GOOD]
    artists = ["Artist 1-2", None, "Artist 5-0"]
    titles = ["Song 1-3", "Song 3-3", None]
    batch = catalog.predict_matrix(rows_to_matrix(rows), artists=artists, titles=titles)
    one = [catalog.predict_one(r, artists=a, title=t) for r, a, t in zip(rows, artists, titles, strict=True)]
    assert [b.head for b in batch] == [HEAD_TITLE, HEAD_TITLE, HEAD_ARTIST]
    for b, o in zip(batch, one, strict=True):
        assert (b.head, b.genre, b.evidence) == (o.head, o.genre, o.evidence)
        assert b.probability == pytest.approx(o.probability, abs=1e-9)


def test_outside_genres_count_as_artist_evidence(catalog: GenrePredictor) -> None:
    base = catalog.predict_one(GOOD, artists="Совсем Новый")
    with_spotify = catalog.predict_one(GOOD, artists="Совсем Новый", spotify_genres=["swedish deep house"])
    assert with_spotify.head == HEAD_ARTIST and "1 outside genres" in with_spotify.evidence
    p_house = dict(with_spotify.top).get("house", 0.0)
    assert p_house > dict(base.top).get("house", 0.0)
    with_deezer = catalog.predict_one(GOOD, artists="Совсем Новый", deezer_genres=["Jazz"])
    assert _p(with_deezer, "jazz") > _p(base, "jazz")


def test_reloaded_blend_predicts_the_same(trained_models: Path, catalog: GenrePredictor) -> None:
    again = GenrePredictor.load(trained_models / "catalog")
    a = catalog.predict_one(GOOD, artists="Artist 3-3", title="Song 3-1")
    b = again.predict_one(GOOD, artists="Artist 3-3", title="Song 3-1")
    assert a == b


def test_genre_sources_map_onto_catalogue_genres() -> None:
    families = json.loads((Path(__file__).parents[2] / "ml" / "genre_families.json").read_text())
    catalogue = sorted(g for gs in families["families"].values() for g in gs)
    assert len(catalogue) == 114
    data = json.loads(SOURCES_FILE.read_text())
    for source in ("deezer", "spotify_aliases"):
        for name, targets in data[source].items():
            assert targets and set(targets) <= set(catalogue), (source, name)
    sources = GenreSources(catalogue, data)
    assert sources.spotify_targets("swedish death metal") == ["death-metal"]
    assert sources.spotify_targets("album rock") == ["rock"]
    assert sources.spotify_targets("k-pop") == ["k-pop"]
    assert sources.spotify_targets("korean pop") == ["k-pop"]
    assert sources.spotify_targets("vapor soul") == ["soul"]
    assert sources.spotify_targets("zzz") == []
    assert sources.deezer_targets("Rap/Hip Hop") == ["hip-hop"]
    counts, mapped = sources.counts(["k-pop", "nonsense"], ["Asian Music"])
    assert mapped == 2 and counts.sum() == pytest.approx(2 * sources.pseudo_count)
    assert np.argmax(counts) == catalogue.index("k-pop")


def test_serving_blend_equals_the_trained_formula() -> None:
    from ml.blend import HEAD_FEATURES, ConditionalLogit, Evidence, blend_features, blend_proba

    rng = np.random.default_rng(0)
    n, k = 7, 5
    audio = rng.dirichlet(np.ones(k), size=n)
    counts = rng.integers(0, 4, size=(n, k)).astype(float)
    counts[0] = 0  # an unknown artist
    ev = Evidence(
        counts,
        rng.normal(size=(n, k)),
        rng.integers(0, 3, n).astype(float),
        rng.normal(size=(n, k)),
        rng.integers(0, 3, n).astype(float),
    )
    family = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 1.0]])
    prior = np.full(k, 1 / k)
    names = HEAD_FEATURES[HEAD_TITLE]
    phi = blend_features(audio, ev, prior, family, names, 1.0)
    mask = np.zeros((n, k), dtype=bool)
    mask[np.arange(n), rng.integers(0, k, n)] = True
    logit = ConditionalLogit().fit(phi, mask)
    np.testing.assert_allclose(
        blend_proba(audio, ev, prior, family, names, 1.0, logit), logit.predict_proba(phi), atol=1e-12
    )


def test_blend_reads_the_audio_source_it_was_fitted_on(catalog: GenrePredictor) -> None:
    source = catalog.blend.config["audio_source"]  # type: ignore[union-attr]
    assert source["model"] in {"production", "catboost alone (no forest)"}
    assert (catalog._source is not None) == ("member" in source)
    # a blend fitted on a member the artefact does not carry is refused at load, not misread
    from ml.meta import MetadataBlend

    blend = catalog.blend
    assert blend is not None
    odd = MetadataBlend(
        blend.classes,
        blend.artists,
        blend.tokens,
        {**blend.config, "audio_source": {"member": "xgboost", "temperature": 1.0}},
        blend.family_matrix,
    )
    with pytest.raises(ValueError, match="xgboost"):
        catalog.blend = odd
    catalog.blend = blend


def test_distribution_for_the_recommender(catalog: GenrePredictor) -> None:
    rows = [GOOD, {**GOOD, "energy": 0.2}]
    matrix = rows_to_matrix(rows)
    proba, heads = catalog.predict_distribution(matrix, artists=["Artist 1-2", "Совсем Новый"], titles=None)
    assert heads == [HEAD_ARTIST, HEAD_AUDIO]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    preds = catalog.predict_matrix(matrix, artists=["Artist 1-2", "Совсем Новый"])
    assert [catalog.classes[int(i)] for i in proba.argmax(axis=1)] == [p.genre for p in preds]
    np.testing.assert_allclose(proba[1], catalog.predict_proba(matrix)[1])  # nothing known: the audio answer
    plain, plain_heads = catalog.predict_distribution(matrix, artists=["Artist 1-2", None], audio_only=True)
    np.testing.assert_allclose(plain, catalog.predict_proba(matrix))
    assert plain_heads == [HEAD_AUDIO, HEAD_AUDIO]


def test_radio_seed_distribution_uses_catalogue_evidence_only(catalog: GenrePredictor) -> None:
    """The §2 prototype counts artist evidence over the evaluation catalogue, never the seed itself."""
    from ml.recsys.evaluation import fold_frame
    from ml.recsys.meta_eval import catalogue_blend, seed_distribution
    from tests.ml.conftest import make_catalog_frame

    folded = fold_frame(make_catalog_frame())
    seeds = folded[folded["artists"] == "Artist 4-3"].head(2).reset_index(drop=True)
    rest = folded[folded["artists"] != "Artist 4-3"].reset_index(drop=True)
    blend = catalogue_blend(catalog, rest)
    proba, _ = seed_distribution(catalog, blend, seeds, use_artists=True, use_title=False)
    assert blend.artists.known(["artist 4 3"]) == []  # the seeds' artist is not in this catalogue
    assert proba.shape == (2, len(catalog.classes))
    with_artist_known = catalogue_blend(catalog, folded)
    proba_known, heads_known = seed_distribution(catalog, with_artist_known, seeds, use_artists=True, use_title=False)
    assert heads_known == [HEAD_ARTIST, HEAD_ARTIST]
    jazz = catalog.classes.index("jazz")  # Artist 4-* files every song under jazz
    assert (proba_known[:, jazz] > proba[:, jazz]).all()
