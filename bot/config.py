"""Settings: one pydantic-settings model read from the environment and `.env`.

Each provider group is its own settings class with an env prefix, so the documented variable
names (``SPOTIFY_API_URL``, ``TELEGRAM_BOT_TOKEN`` …) work as they are, and the nested
form (``SPOTIFY__API_URL``) works too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_FILE = ".env"


def _config(prefix: str = "") -> SettingsConfigDict:
    return SettingsConfigDict(
        env_prefix=prefix,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        env_nested_delimiter="__",
    )


def _blank_to_none(value: object) -> object:
    """An empty variable (``TELEGRAM_BOT_TOKEN=``) means "not set"."""
    return None if isinstance(value, str) and not value.strip() else value


class TelegramSettings(BaseSettings):
    model_config = _config("TELEGRAM_")

    bot_token: SecretStr | None = None

    _blank = field_validator("bot_token", mode="before")(_blank_to_none)
    api_url: str = "https://api.telegram.org"
    # Webhook mode is on when WEBHOOK_URL is set (read by the parent settings).
    drop_pending_updates: bool = False


class WebhookSettings(BaseSettings):
    model_config = _config("WEBHOOK_")

    url: str | None = None
    secret: SecretStr | None = None
    path: str = "/telegram/webhook"

    _blank = field_validator("url", "secret", mode="before")(_blank_to_none)


class SpotifySettings(BaseSettings):
    model_config = _config("SPOTIFY_")

    client_id: str | None = None
    client_secret: SecretStr | None = None
    api_url: str = "https://api.spotify.com/v1/"

    _blank = field_validator("client_id", "client_secret", mode="before")(_blank_to_none)
    token_url: str = "https://accounts.spotify.com/api/token"
    timeout: float = 5.0
    max_retries: int = 3
    max_retry_after: float = 10.0
    # "Save to Spotify" (a person's own account, Authorization Code with PKCE): where people authorize,
    # and the Fernet key(s) that encrypt their tokens at rest — comma-separated, the first encrypts,
    # all decrypt (rotation). Also needs SPOTIFY_CLIENT_ID and PUBLIC_URL (the callback's address).
    accounts_url: str = "https://accounts.spotify.com/"
    token_key: SecretStr | None = None

    _blank_key = field_validator("token_key", mode="before")(_blank_to_none)

    @property
    def enabled(self) -> bool:
        return bool(self.client_id and self.client_secret and self.client_secret.get_secret_value())

    @property
    def token_keys(self) -> tuple[str, ...]:
        raw = self.token_key.get_secret_value() if self.token_key is not None else ""
        return tuple(k.strip() for k in raw.split(",") if k.strip())


class YouTubeSettings(BaseSettings):
    model_config = _config("YOUTUBE_")

    api_key: SecretStr | None = None
    api_url: str = "https://www.googleapis.com/"
    # Keyless video titles for YouTube links (the fallback when the Data API can't answer); blank: off.
    oembed_url: str | None = "https://www.youtube.com/oembed"

    _blank = field_validator("api_key", "oembed_url", mode="before")(_blank_to_none)
    timeout: float = 5.0
    cache_days: int = 30

    @property
    def enabled(self) -> bool:
        return bool(self.api_key and self.api_key.get_secret_value())


class ReccoBeatsSettings(BaseSettings):
    model_config = _config("RECCOBEATS_")

    api_url: str = "https://api.reccobeats.com/v1/"
    enabled: bool = True
    timeout: float = 5.0
    # Uploading up to 5 MB and analysing it takes longer than a lookup.
    analysis_timeout: float = 30.0


class DeezerSettings(BaseSettings):
    """Deezer's public API: keyless search, lookups and 30-second previews."""

    model_config = _config("DEEZER_")

    api_url: str = "https://api.deezer.com/"
    enabled: bool = True
    timeout: float = 5.0
    max_retries: int = 3
    max_retry_after: float = 10.0
    # Deezer's quota is 50 requests per 5 s per IP address; with several processes on one
    # address, divide it between them.
    rate_limit: int = Field(default=50, ge=1)
    rate_period: float = Field(default=5.0, gt=0)
    # Where short links (deezer.page.link, link.deezer.com) are fetched; empty: the link itself.
    short_link_url: str | None = None
    # Origins the web page may play 30-s previews from (its CSP media-src), comma-separated: the
    # Deezer CDN hosts preview URLs point at (cdnt-preview.dzcdn.net, cdns-preview-<x>.dzcdn.net).
    preview_origins: str = "https://*.dzcdn.net"
    # How long a card (or radio card) waits for a catalogue song to be found on Deezer (its preview,
    # cover and year) before it is shown without them; the lookup goes on and is stored for next time.
    lookup_budget: float = Field(default=1.5, ge=0)

    _blank = field_validator("short_link_url", mode="before")(_blank_to_none)

    @property
    def preview_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in self.preview_origins.split(",") if o.strip())


class AnalysisSettings(BaseSettings):
    """Songs sent as audio (web upload, API, later the bot): size cap and a budget per person."""

    model_config = _config("ANALYSIS_")

    enabled: bool = True
    max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Analyses per person or API client: this many at once, refilled evenly over `period` seconds.
    per_identity: int = Field(default=12, ge=1)
    period: float = Field(default=3600.0, gt=0)


class HttpSettings(BaseSettings):
    model_config = _config("HTTP_")

    host: str = "127.0.0.1"
    port: int = 8080
    # Processes serving HTTP on host:port (SO_REUSEPORT); only the first runs migrations, bot, scheduler.
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = 64 * 1024
    rate_limit_per_minute: int = 600
    # Slow and vanishing clients: time to send a request's headers (also the idle keep-alive), time to
    # send a body, and open connections allowed from one address.
    keepalive_timeout: float = Field(default=15.0, gt=0)
    body_timeout: float = Field(default=30.0, gt=0)
    max_connections_per_client: int = Field(default=64, ge=1)
    # GET /metrics: "public" (on the main port), "off", or a port number of its own (bound to HTTP_HOST
    # unless METRICS_HOST says otherwise), so that it can be closed to the world.
    metrics: str = Field(default="public", pattern=r"^(public|off|[0-9]{1,5})$")
    metrics_host: str = "127.0.0.1"


class Settings(BaseSettings):
    """Everything Encore reads from its environment."""

    model_config = _config()

    data_dir: Path = Path("data")
    database_url: str | None = None
    redis_url: str | None = None
    # Every Redis key Encore writes starts with this (several deployments, or test runs, on one server).
    redis_prefix: str = Field(default="encore", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    _blank = field_validator(
        "database_url", "redis_url", "encore_data_mirror", "model_dir", "session_secret", "public_url", mode="before"
    )(_blank_to_none)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    encore_data_mirror: Path | None = None
    model_dir: Path | None = None
    api_keys: str = ""
    # Signs the web page's session cookies (shared by every instance); unset: a key kept in DATA_DIR.
    session_secret: SecretStr | None = None
    # Where people reach Encore (https://encore.example.com): the origin of its forms, Secure cookies.
    public_url: str | None = None
    cors_origins: str = ""
    picks_default_hour: int = Field(default=10, ge=0, le=23)
    # How often every process looks for tracks stored by any instance since its indices were built
    # (they become search results and recommendation candidates here within this time).
    catalog_refresh_seconds: float = Field(default=20.0, gt=0, le=3600)
    # Load the genre model right after `serve` starts listening (true), or on its first use (false:
    # ~270 MB less while no card or genre is asked for; the first such answer waits ~1 s).
    model_preload: bool = True
    # Playing radios each process keeps in memory (LRU, ~2 KiB each) so that an answer skips reading
    # the radio back; one that fell out is read from the database on its next answer.
    radio_cache_size: int = Field(default=2000, ge=0)

    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    spotify: SpotifySettings = Field(default_factory=SpotifySettings)
    youtube: YouTubeSettings = Field(default_factory=YouTubeSettings)
    reccobeats: ReccoBeatsSettings = Field(default_factory=ReccoBeatsSettings)
    deezer: DeezerSettings = Field(default_factory=DeezerSettings)
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL: DATABASE_URL, or a SQLite file in the data folder."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'encore.db').as_posix()}"

    @property
    def models_path(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    @property
    def public_origin(self) -> str | None:
        """scheme://host[:port] of PUBLIC_URL."""
        if not self.public_url:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None

    @property
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in self.cors_origins.split(",") if o.strip())


def normalize_database_url(url: str) -> str:
    """Accept the usual `postgres://` / `postgresql://` / `sqlite://` forms and pick async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///") or url == "sqlite://":
        return "sqlite+aiosqlite" + url[len("sqlite") :]
    return url
