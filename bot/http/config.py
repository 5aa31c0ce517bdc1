"""What the web app reads from Settings (or is given directly in tests)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings

API_PREFIX = "/api/"
# Paths nobody is rate limited on: probes and scrapers must always get through.
UNLIMITED_PATHS = frozenset({"/healthz", "/metrics"})


@dataclass(frozen=True, slots=True)
class WebConfig:
    api_keys: frozenset[str] = frozenset()
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 64 * 1024
    rate_limit_per_minute: int = 600  # 0 turns the limiter off
    # Anonymous "similar" answers change only when the catalogue is re-imported.
    similar_cache_ttl: float = 300.0  # seconds; 0 turns the cache off
    similar_cache_stale: float = 600.0  # seconds an expired answer is still served while refreshed
    similar_cache_size: int = 1024  # answers of ~9 KB: 9 MiB full
    # Never rate limited: probes, scrapers and the Telegram webhook (Telegram retries on its own).
    unlimited_paths: frozenset[str] = UNLIMITED_PATHS

    body_timeout: float = 30.0  # seconds a client may take to send a request body (408 after)
    metrics_public: bool = True  # GET /metrics on this app (HTTP_METRICS=off or a port of its own: not)
    redis_url: str | None = None  # a shared rate limiter for every instance
    redis_prefix: str = "encore"
    # Signs the web page's session cookies; main.py passes SESSION_SECRET or a key kept in the data folder.
    session_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    # The page's public address (PUBLIC_URL): the Origin its forms must come from; else this request's own.
    public_origin: str | None = None
    # Largest upload (POST /api/v1/analyze, the page's form), read as a stream.
    max_upload_bytes: int = 20 * 1024 * 1024
    # Origins the page may play 30-s previews from (CSP media-src); a preview elsewhere is not shown.
    media_origins: tuple[str, ...] = ("https://*.dzcdn.net",)

    @classmethod
    def from_settings(cls, settings: Settings, *, session_secret: bytes | None = None) -> WebConfig:
        extra: dict[str, Any] = {"session_secret": session_secret} if session_secret is not None else {}
        return cls(
            api_keys=settings.api_key_set,
            cors_origins=settings.cors_origin_list,
            max_body_bytes=settings.http.max_body_bytes,
            rate_limit_per_minute=settings.http.rate_limit_per_minute,
            body_timeout=settings.http.body_timeout,
            metrics_public=settings.http.metrics == "public",
            unlimited_paths=UNLIMITED_PATHS | {settings.webhook.path},
            redis_url=settings.redis_url,
            redis_prefix=settings.redis_prefix,
            public_origin=settings.public_origin,
            **extra,
            max_upload_bytes=settings.analysis.max_bytes,
            media_origins=settings.deezer.preview_origin_list,
        )

    def key_ok(self, presented: str | None) -> bool:
        if not presented:
            return False
        given = presented.encode()
        # Compare against every key in constant time (no early exit on the first match).
        found = False
        for key in self.api_keys:
            found |= hmac.compare_digest(given, key.encode())
        return found
