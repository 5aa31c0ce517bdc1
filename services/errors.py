"""Domain errors. Handlers turn them into user text or HTTP problem details."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.dto import RadioStep


class EncoreError(Exception):
    """Base of every error a service raises on purpose; `message` is safe to show."""

    code = "error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class TrackNotFound(EncoreError):
    code = "track_not_found"


class UnsupportedInput(EncoreError):
    """A link Encore does not handle (album, playlist, artist, podcast …)."""

    code = "unsupported_input"

    def __init__(self, message: str, kind: str = "unsupported") -> None:
        super().__init__(message)
        self.kind = kind


class InvalidInput(EncoreError):
    code = "invalid_input"


class NoFeatures(EncoreError):
    """No audio features are known for a track, so the model cannot place it."""

    code = "no_features"


class RadioNotFound(EncoreError):
    code = "radio_not_found"


class RadioConflict(EncoreError):
    """An answer for a track the radio has moved past (a double tap, a concurrent request, an old
    tab). `step` is where the radio stands now."""

    code = "radio_moved_on"

    def __init__(self, message: str, step: RadioStep) -> None:
        super().__init__(message)
        self.step = step


class RadioStopped(RadioConflict):
    """An answer for a radio that has been stopped."""

    code = "radio_stopped"


class ProviderUnavailable(EncoreError):
    """An outside provider failed (timeout, quota, 5xx); callers degrade."""

    code = "provider_unavailable"


class AudioNotAnalysable(EncoreError):
    """An audio file the analysis provider cannot take: too large, empty, not audio, or refused by it.

    `reason` is one of "empty", "too_large", "unsupported_format", "rejected".
    """

    code = "audio_not_analysable"

    def __init__(self, message: str, reason: str = "rejected") -> None:
        super().__init__(message)
        self.reason = reason


class ModelNotReady(EncoreError):
    code = "model_not_ready"


class NoGenreHead(EncoreError):
    """The genre model has no head for the inputs a song has (e.g. the nine analysis values)."""

    code = "no_genre_head"


class AnalysisRateLimited(EncoreError):
    """Too many audio analyses for one person or client; `retry_after` seconds until the next."""

    code = "analysis_rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PlaylistNotFound(EncoreError):
    """No such playlist for this owner (someone else's is answered the same way)."""

    code = "playlist_not_found"


class PlaylistNameTaken(EncoreError):
    code = "playlist_name_taken"


class LikesPlaylistFixed(InvalidInput):
    """The likes playlist cannot be renamed, deleted or reordered (its order is when you liked)."""

    code = "likes_playlist_fixed"


class PlaylistChanged(EncoreError):
    """A change based on an older view of the playlist (its `version` moved on); nothing was changed."""

    code = "playlist_changed"

    def __init__(self, message: str, version: int) -> None:
        super().__init__(message)
        self.version = version


class SpotifyNotConfigured(EncoreError):
    """Saving to Spotify is off here (no SPOTIFY_CLIENT_ID, PUBLIC_URL or SPOTIFY_TOKEN_KEY)."""

    code = "spotify_save_off"


class SpotifyNotConnected(EncoreError):
    """The person has not authorized Encore in their Spotify (or the authorization expired or was
    revoked): `authorize_url` starts it, and saves `playlist` after."""

    code = "spotify_not_connected"

    def __init__(self, message: str, authorize_url: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.authorize_url = authorize_url
        self.expired = expired


class SpotifyRefused(EncoreError):
    """Spotify refused (403): above all a development-mode app's allow-list (at most 5 people)."""

    code = "spotify_refused"


class SpotifyRateLimited(EncoreError):
    code = "spotify_rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
