"""DTO → JSON for the API (and the JSON response helper)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from services.dto import (
    GenreGuess,
    PlaylistInfo,
    PlaylistView,
    RadioStep,
    Recommendation,
    Resolution,
    ShareInfo,
    SpotifySaved,
    TrackCard,
    TrackInfo,
    YouTubePlay,
)

if TYPE_CHECKING:
    from services.analysis import AnalysisResult


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def track_json(track: TrackInfo) -> dict[str, Any]:
    features = None
    if track.features is not None:
        features = {name: _finite(value) for name, value in track.features.items()}
    return {
        "id": track.id,
        "spotify_id": track.spotify_id,
        "name": track.name,
        "artists": list(track.artists),
        "title": track.title,
        "album": track.album,
        "duration_ms": track.duration_ms,
        "explicit": track.explicit,
        "popularity": track.popularity,
        "genres": list(track.genres),
        "features": features,
        "source": track.source,
        "features_source": track.features_source,
        "spotify_url": track.spotify_url,
        "youtube_search_url": track.youtube_search_url,
        "deezer_id": track.deezer_id,
        "deezer_url": track.deezer_url,
        "isrc": track.isrc,
        "cover_url": track.cover_url,
        "year": track.year,
    }


def _pairs(pairs: tuple[tuple[str, float], ...], label: str) -> list[dict[str, Any]]:
    return [{label: name, "probability": _finite(p) or 0.0} for name, p in pairs]


def guess_json(guess: GenreGuess) -> dict[str, Any]:
    return {
        "genre": guess.genre,
        "probability": _finite(guess.probability) or 0.0,
        "top": _pairs(guess.top, "genre"),
        "family": guess.family,
        "family_probability": _finite(guess.family_probability) or 0.0,
        "family_top": _pairs(guess.family_top, "family"),
        "confident": guess.confident,
        "model_version": guess.model_version,
        "head": guess.head,
        "source": guess.source.value,
    }


def card_json(card: TrackCard) -> dict[str, Any]:
    return {
        "track": track_json(card.track),
        "genre": guess_json(card.genre) if card.genre is not None else None,
        "links": {
            "spotify": card.track.spotify_url,
            "youtube": card.youtube.url,
            "youtube_is_search": card.youtube.is_search,
            "youtube_video_id": card.youtube.video_id,
            "deezer": card.track.deezer_url,
            "preview": card.preview_url,
        },
        "note": card.note,
        "liked": card.liked,
    }


def analysis_json(result: AnalysisResult) -> dict[str, Any]:
    return {
        "kind": result.kind,
        "card": card_json(result.card),
        "similar": [recommendation_json(r) for r in result.similar],
        "tags": {"title": result.tags.title, "artist": result.tags.artist},
        "radio": {"track_id": result.card.track.id},
        "note": result.note,
    }


def recommendation_json(rec: Recommendation) -> dict[str, Any]:
    return {"track": track_json(rec.track), "score": _finite(rec.score) or 0.0, "reason": rec.reason}


def radio_json(step: RadioStep) -> dict[str, Any]:
    return {
        "radio_id": step.radio_id,
        "track": track_json(step.track) if step.track is not None else None,
        "position": step.position,
        "likes": step.likes,
        "skips": step.skips,
        "stopped": step.stopped,
    }


def search_json(query: str, resolution: Resolution) -> dict[str, Any]:
    return {
        "query": query,
        "kind": str(resolution.kind),
        "items": [track_json(t) for t in resolution.tracks],
        "message": resolution.message,
        "notice": resolution.notice,
    }


def dumps(body: object) -> bytes:
    """UTF-8 JSON (orjson: ~15x faster than json.dumps on a search answer, 10 vs 150 µs for ten
    tracks). Non-string keys become strings, as json.dumps makes them; floats are made finite by the
    *_json functions before (`_finite`)."""
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json")


def playlist_json(playlist: PlaylistInfo, share_url: str | None = None) -> dict[str, Any]:
    return {
        "id": playlist.id,
        "name": playlist.name,
        "kind": playlist.kind,
        "count": playlist.count,
        "version": playlist.version,
        "shared": playlist.shared,
        "share_url": share_url,
    }


def playlist_view_json(view: PlaylistView, share_url: str | None = None) -> dict[str, Any]:
    page = view.tracks
    return {
        **playlist_json(view.playlist, share_url),
        "tracks": {
            "items": [track_json(t) for t in page.items],
            "page": page.page,
            "pages": page.pages,
            "total": page.total,
        },
    }


def share_json(share: ShareInfo, url: str) -> dict[str, Any]:
    return {
        "token": share.token,
        "path": share.path,
        "url": url,
        "count": share.playlist.count,
        "top_genres": [{"genre": g, "count": n} for g, n in share.top_genres],
    }


def youtube_play_json(play: YouTubePlay) -> dict[str, Any]:
    return {"urls": list(play.urls), "known": play.known, "total": play.total}


def spotify_saved_json(saved: SpotifySaved) -> dict[str, Any]:
    return {
        "name": saved.name,
        "url": saved.url,
        "spotify_id": saved.spotify_id,
        "added": saved.added,
        "skipped": saved.skipped,
    }
