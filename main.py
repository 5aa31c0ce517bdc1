"""Encore's one entry point.

python main.py [serve]        apply migrations, start the HTTP server and (with a token) the bot;
                              HTTP_WORKERS=N adds N-1 processes serving HTTP on the same port
python main.py migrate        upgrade the database schema to the latest migration
python main.py setup          datasets, catalogue import and the genre model, when missing
python main.py <command> -h   help for any other command (train, predict, collect, recommend …)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import inspect
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bot.config import Settings
from bot.logging import setup_logging

if TYPE_CHECKING:
    from aiohttp import web

    from bot.cli import CliContext
    from bot.http.server import ServerLimits
    from bot.http.workers import HttpWorkers
    from services.container import Services
    from services.genre import GenreService
    from services.models import ModelService
    from services.recommender import RecommendationService
    from services.tracks import TrackService

log = logging.getLogger("encore")
ROOT = Path(__file__).resolve().parent

STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
REPO_ROOT = Path(__file__).resolve().parent


async def cmd_migrate(args: argparse.Namespace, cli: CliContext) -> int:
    from db.migrate import upgrade_to_head

    settings = cli.settings

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await upgrade_to_head(settings.db_url)
    log.info("database schema is at the latest migration")
    return 0


async def cmd_serve(args: argparse.Namespace, cli: CliContext) -> int:
    from bot.http.server import start_server
    from bot.http.workers import HttpWorkers
    from bot.scheduler import create_scheduler

    settings = cli.settings
    await cmd_migrate(args, cli)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)

    workers: HttpWorkers | None = getattr(args, "forked_workers", None)
    count = settings.http.workers
    if workers is not None:  # forked by main() before the event loop
        workers.watch()
    elif count > 1 and webhook_mode(settings):
        # Only the primary has the webhook route, and Telegram's POSTs would reach any process.
        log.warning("HTTP_WORKERS=%d ignored: webhook mode serves HTTP from one process", count)
        count = 1
    elif count > 1:
        # After the migrations, so the workers find the schema ready; they build their services meanwhile.
        workers = HttpWorkers([sys.executable, __file__, "serve-http-worker"], count - 1)
        workers.start()
    try:
        services = await cli.services()
        await services.warm_up()
        settle_heap()
        app = create_http_app(services, settings)
        telegram = None
        if settings.telegram.bot_token is None:
            log.warning("TELEGRAM_BOT_TOKEN is not set: the Telegram bot is off, the HTTP API and page are on")
        else:
            from bot.telegram.runtime import start_telegram
            from handlers.telegram import get_routers

            # Before runner.setup(): webhook mode adds its route to the app, which setup() freezes.
            telegram = await start_telegram(settings, services, get_routers(), app)
        # Hourly cache purge always; daily picks once the bot has attached itself to deliver them.
        scheduler = create_scheduler(
            services.picks,
            services.cache,
            refresh=catalogue_refresher(services, app),
            refresh_seconds=settings.catalog_refresh_seconds,
        )
        scheduler.start()
        runner = await start_server(
            app, settings.http.host, settings.http.port, limits=server_limits(settings), reuse_port=workers is not None
        )
        metrics_runner = await start_metrics_server(app, settings)
        preload = asyncio.create_task(preload_model(services)) if settings.model_preload else None
        log.info(
            "HTTP server on http://%s:%d (health: /healthz)%s",
            settings.http.host,
            settings.http.port,
            f" with {count} processes" if workers is not None else "",
        )
        try:
            await stop.wait()
            log.info("shutting down: finishing in-flight work")
        finally:
            if preload is not None and not preload.done():
                await asyncio.wait({preload}, timeout=30)  # a thread cannot be cancelled
            if workers is not None:
                workers.terminate()
            await scheduler.stop()
            if telegram is not None:
                await telegram.stop()
            await runner.cleanup()
            if metrics_runner is not None:
                await metrics_runner.cleanup()
            await cli.close()
    finally:
        if workers is not None:
            await workers.stop()
        log.info("stopped")
    return 0


def webhook_mode(settings: Settings) -> bool:
    return settings.telegram.bot_token is not None and bool(settings.webhook.url)


# What a serving process imports (the composition root, the HTTP app, the scheduler, the indices):
# imported before the HTTP workers are forked, so that every process shares their memory.
SERVE_MODULES = (
    "bot.http.server",
    "bot.http.workers",
    "bot.http.config",
    "bot.scheduler",
    "handlers.http",
    "handlers.http.api",
    "db.engine",
    "db.repositories",
    "ml.pipeline.datasets",
    "ml.predictor",
    "ml.lean",
    "ml.recsys.snapshot",
    "services.container",
    "services.analysis",
    "services.audio_features",
    "services.cache",
    "services.data",
    "services.evaluation",
    "services.feedback",
    "services.genre",
    "services.health",
    "services.jobs",
    "services.playlists",
    "services.radio",
    "services.ratelimit",
    "services.recommender",
    "services.search",
    "services.spotify",
    "services.spotify_accounts",
    "services.tracks",
    "services.users",
    "services.youtube",
)


def fork_http_workers(settings: Settings) -> HttpWorkers | None:
    """HTTP_WORKERS > 1: the extra processes, forked from this one before its event loop starts, once
    the schema is migrated and what serving needs is imported (`HttpWorkers.fork`): the modules are
    then in memory once for all processes, not once per fresh interpreter. None when there is no
    worker to start, or when something already runs a thread here (`serve` then starts the workers
    as fresh interpreters, as without fork)."""
    import importlib
    import threading

    from bot.http.workers import HttpWorkers

    if settings.http.workers <= 1 or webhook_mode(settings) or not hasattr(os, "fork"):
        return None
    asyncio.run(run_command(argparse.Namespace(command="migrate", handler=cmd_migrate), settings))
    for name in SERVE_MODULES:
        importlib.import_module(name)
    if threading.active_count() > 1:
        log.warning("threads running before the HTTP workers start: starting them as new processes")
        return None
    workers = HttpWorkers([], settings.http.workers - 1)
    worker = argparse.Namespace(command="serve-http-worker", handler=cmd_serve_http_worker)
    workers.fork(lambda: asyncio.run(run_command(worker, settings)))
    return workers


async def cmd_serve_http_worker(args: argparse.Namespace, cli: CliContext) -> int:
    """An extra HTTP process started by `serve` (HTTP_WORKERS > 1): no migrations, bot or scheduler."""
    from bot.http.server import start_server
    from bot.http.workers import run_http_worker

    settings = cli.settings

    async def serve(stop: asyncio.Event) -> None:
        from bot.scheduler import create_scheduler

        services = await cli.services()
        try:
            await services.warm_up()
            settle_heap()
            runner = None
            # Only the catalogue refresh: the primary runs the other jobs once for everyone.
            app = create_http_app(services, settings)
            scheduler = create_scheduler(
                None, None, refresh=catalogue_refresher(services, app), refresh_seconds=settings.catalog_refresh_seconds
            )
            scheduler.start()
            try:
                if not stop.is_set():
                    runner = await start_server(
                        app,
                        settings.http.host,
                        settings.http.port,
                        limits=server_limits(settings),
                        reuse_port=True,
                    )
                    log.info("HTTP worker %d serving", os.getpid())
                await stop.wait()
            finally:
                await scheduler.stop()
                if runner is not None:
                    await runner.cleanup()
        finally:
            await cli.close()
        log.info("HTTP worker %d stopped", os.getpid())

    await run_http_worker(serve)
    return 0


async def cmd_setup(args: argparse.Namespace, cli: CliContext) -> int:
    """Everything `make run` needs once: datasets, schema, catalogue, product model (each only when missing)."""
    from bot.cli import progress_bars
    from handlers.cli.ml import cmd_train
    from services.data import DataError

    await cmd_migrate(args, cli)
    try:
        stats = await (await cli.data()).setup(progress=progress_bars(not args.no_progress))
    except DataError as exc:
        log.error("%s", exc.message)
        return 1
    if stats is None:
        log.info("catalogue already imported")
    train = build_parser().parse_args(["train", "--task", "catalog", "--quick", "--if-missing"])
    code = await asyncio.to_thread(cmd_train, train, cli)
    if code:
        log.error("training the genre model failed (exit %s)", code)
        return int(code)
    await asyncio.to_thread(write_lean_model, cli.settings.models_path / "catalog")
    # The indices, built once here and saved (serve loads them): kept when still current.
    recommendations, tracks, _ = built_services(await cli.services())
    await recommendations.index()
    await tracks.index()
    # Each song's "similar" list, worked out once (GET /similar reads it instead of searching).
    started = time.perf_counter()
    table = await recommendations.prepare_neighbours()
    if table is not None:
        log.info("similar lists ready: %d songs, %.1fs", int((table.radius2 >= 0).sum()), time.perf_counter() - started)
    return 0


def write_lean_model(model_path: Path) -> None:
    """The model's heads as lean files (`ml.lean`) when an artefact trained before them lacks them."""
    from ml.training.artefacts import ensure_lean

    if not (model_path / "meta.json").exists():
        return
    try:
        written = ensure_lean(model_path)
    except OSError as exc:  # a read-only model folder: served from the pickles, as before
        log.warning("could not write the lean model files in %s: %s", model_path, exc)
        return
    if written:
        log.info("wrote the lean model files of heads %s in %s", ", ".join(written), model_path)


def built_services(services: Services) -> tuple[RecommendationService, TrackService, GenreService]:
    """The concrete services `build_services` put in the container (typed there by their Protocols)."""
    return (
        cast("RecommendationService", services.recommendations),
        cast("TrackService", services.tracks),
        cast("GenreService", services.genre),
    )


async def preload_model(services: Services) -> None:
    """The genre model, loaded while the server already answers (the first genre answers wait for it)."""
    try:
        await built_services(services)[2].load()
    except Exception:
        log.exception("loading the genre model failed; genre answers will say the model is not ready")
    else:
        gc.freeze()  # the model lives as long as the process too (no collect: requests are being served)


def settle_heap() -> None:
    """What start-up built (the indices, the services) lives as long as the process: collect once,
    then take it out of the cyclic collector's sight (`gc.freeze`), so that a full collection walks
    only what requests made since. Left in sight, the recommender index's ~140,000 objects made
    each full collection a pause of 200-330 ms in the middle of serving (the radio benchmark's p99)."""
    gc.collect()
    gc.freeze()


def catalogue_refresher(services: Services, app: web.Application | None = None) -> Callable[[], Awaitable[int]]:
    """Tracks stored by any instance since this process's indices were built: into both indices.
    When the recommender's index grew (here or by an earlier add in this process), the cached
    /similar answers are dropped, so that the new tracks show up in them too."""
    seen = [-1]
    recommendations, tracks, _ = built_services(services)

    async def refresh() -> int:
        added = await recommendations.refresh()
        size = await recommendations.catalogue_size()
        if app is not None and (added or (seen[0] >= 0 and size != seen[0])):
            from handlers.http.api import similar_cache_key

            if (cache := app.get(similar_cache_key)) is not None:
                cache.clear()
        seen[0] = size
        return added + await tracks.refresh_index()

    return refresh


async def drop_index_snapshots(settings: Settings) -> None:
    """After a catalogue import: the saved indices no longer match (the next start rebuilds them)."""
    from ml.recsys import snapshot
    from services.recommender import SNAPSHOT as RECOMMENDER
    from services.search import SNAPSHOT as SEARCH

    for name in (RECOMMENDER, SEARCH):
        await asyncio.to_thread(snapshot.remove, index_dir(settings), name)


# -- composition ---------------------------------------------------------------------------------


async def build_services(settings: Settings) -> Services:
    """Every service, built once from the settings; what is heavy loads on first use (or warm_up()).

    Providers whose keys are missing are simply absent and the services fall back to the catalogue
    and search links.
    """
    from concurrent.futures import ThreadPoolExecutor

    from db.engine import Units, create_engine, create_session_factory
    from ml.pipeline.datasets import CATALOG
    from ml.predictor import GenrePredictor
    from services.analysis import AnalysisService
    from services.audio_features import AudioFeatureChain, ReccoBeatsClient
    from services.cache import CacheService
    from services.container import Services
    from services.data import DataService
    from services.evaluation import RecommenderEvaluation
    from services.feedback import FeedbackService
    from services.genre import GenreService
    from services.health import HealthService
    from services.jobs import DailyPicksService
    from services.playlists import PlaylistService
    from services.radio import RadioService
    from services.ratelimit import IdentityLimiter, MemoryTokenBuckets, RedisTokenBuckets
    from services.recommender import RecommendationService
    from services.spotify import SEARCH_PAGE_MAX, SpotifyClient
    from services.tracks import TrackService
    from services.users import UserService
    from services.youtube import YouTubeService

    engine = create_engine(settings.db_url)
    sessions = create_session_factory(engine)
    closers: list[Callable[[], Awaitable[None]]] = [engine.dispose]
    health = HealthService(engine)

    model_path = settings.models_path / "catalog"

    def load_model() -> GenrePredictor | None:
        if not (model_path / "meta.json").exists():
            log.warning("no genre model at %s: run `python main.py setup` (cards will show no genre)", model_path)
            health.set_detail("model_version", None)
            return None
        predictor = GenrePredictor.load(model_path)
        log.info("genre model %s loaded from %s", predictor.version, model_path)
        health.set_detail("model_version", predictor.version)
        return predictor

    genre = GenreService(loader=load_model)
    cache = CacheService(sessions)
    spotify = None
    if settings.spotify.enabled:
        sp = settings.spotify
        assert sp.client_id and sp.client_secret
        spotify = SpotifyClient(
            sp.client_id,
            sp.client_secret.get_secret_value(),
            sp.api_url,
            sp.token_url,
            sp.timeout,
            sp.max_retries,
            sp.max_retry_after,
        )
        closers.append(_async(spotify.close))
    else:
        log.info("Spotify keys are not set: searching the bundled catalogue only")
    reccobeats = None
    if settings.reccobeats.enabled:
        reccobeats = ReccoBeatsClient(
            settings.reccobeats.api_url,
            timeout=settings.reccobeats.timeout,
            analysis_timeout=settings.reccobeats.analysis_timeout,
        )
        closers.append(reccobeats.close)
    deezer = None
    if settings.deezer.enabled:
        from services.deezer import DeezerClient

        dz = settings.deezer
        deezer = DeezerClient(
            cache,
            dz.api_url,
            timeout=dz.timeout,
            max_retries=dz.max_retries,
            max_retry_after=dz.max_retry_after,
            rate_limit=dz.rate_limit,
            rate_period=dz.rate_period,
            short_link_url=dz.short_link_url,
        )
        closers.append(deezer.close)
    else:
        log.info("DEEZER_ENABLED=false: songs outside the catalogue are found only with Spotify keys")
    yt = settings.youtube
    youtube_key = yt.api_key.get_secret_value() if yt.api_key and yt.enabled else None
    if youtube_key is None:
        log.info("YOUTUBE_API_KEY is not set: track cards link to a YouTube search")
    youtube = YouTubeService(
        cache, youtube_key, yt.api_url, timeout=yt.timeout, cache_days=yt.cache_days, oembed_url=yt.oembed_url
    )
    features = AudioFeatureChain(sessions, cache, spotify=spotify, reccobeats=reccobeats, deezer=deezer)
    data = DataService(
        sessions,
        settings.data_dir / "raw",
        mirror=data_mirror(settings),
        search=spotify,
        features=features if spotify is not None else None,
        search_page=SEARCH_PAGE_MAX,
        on_import=lambda: drop_index_snapshots(settings),
    )
    # The recommender's and the radio's searches on one thread of their own (in asyncio's default
    # pool six searches at once fought for the GIL: 288 answers/s against 408). A radio answer's
    # search hands its unit straight to the SQLite writer's thread (`Units.run_after`), so writes
    # never wait behind searches: bench_radio 387-408 → 417-425 answers/s, interleaved runs.
    units = Units(sessions, engine)
    closers.append(units.close)
    searches = ThreadPoolExecutor(1, thread_name_prefix="searches")
    closers.append(_async(searches.shutdown))
    recommendations = RecommendationService(
        sessions,
        proba_source=genre.predictor,
        snapshot_dir=index_dir(settings),
        model_version=lambda: model_version(model_path),
        cpu=searches,
    )
    deezer_lookup = None
    if deezer is not None:
        from services.deezer_match import DeezerLookup

        deezer_lookup = DeezerLookup(sessions, deezer, cache, budget=settings.deezer.lookup_budget)
        closers.append(deezer_lookup.close)  # closed before the client (closers run last first)
    tracks = TrackService(
        sessions,
        None,
        spotify,
        youtube,
        features,
        genre,
        deezer=deezer,
        on_features=recommendations.add_tracks,
        deezer_lookup=deezer_lookup,
        snapshot_dir=index_dir(settings),
    )
    analysis = None
    if settings.analysis.enabled:
        an = settings.analysis
        limiter: IdentityLimiter
        if settings.redis_url:
            limiter = RedisTokenBuckets.from_url(
                settings.redis_url, an.per_identity, an.period, prefix=f"{settings.redis_prefix}:analysis:"
            )
        else:
            limiter = MemoryTokenBuckets(an.per_identity, an.period)
        closers.append(limiter.close)
        analysis = AnalysisService(
            sessions, tracks, recommendations, reccobeats, limiter, cache=cache, max_bytes=an.max_bytes
        )

    radio = RadioService(  # searches on the recommender's thread
        sessions, recommendations, units=units, cache_size=settings.radio_cache_size
    )
    playlists = PlaylistService(
        sessions,
        radio,
        genres=genre,
        youtube=youtube,
        previews=tracks.preview_url,
        public_url=settings.public_url,
    )
    spotify_save = build_spotify_save(settings, sessions, playlists)
    if spotify_save.enabled:
        closers.append(spotify_save.close)

    async def warm_tracks() -> None:
        health.set_detail("catalog_tracks", len(await tracks.index()))

    async def warm_recommender() -> None:
        health.set_detail("recommender_tracks", len(await recommendations.index()))

    services = Services(
        users=UserService(sessions, default_pick_hour=settings.picks_default_hour),
        health=health,
        genre=genre,
        tracks=tracks,
        recommendations=recommendations,
        radio=radio,
        feedback=FeedbackService(sessions, genres=genre),
        cache=cache,
        picks=DailyPicksService(sessions, recommendations),
        data=data,
        evaluation=RecommenderEvaluation(
            data.path_of(CATALOG), model=genre.predictor, holdout=model_path / "holdout.json"
        ),
        # The indices load from their snapshots before the server listens; the genre model is not
        # needed for that, so `serve` loads it in the background once listening (MODEL_PRELOAD), and
        # extra HTTP processes load it on first use.
        warmers=[warm_tracks, warm_recommender],
        analysis=analysis,
        playlists=playlists,
        spotify_save=spotify_save,
    )
    for closer in closers:
        services.on_close(closer)
    return services


SPOTIFY_CALLBACK_PATH = "/spotify/callback"


def build_spotify_save(settings: Settings, sessions: Any, playlists: Any) -> Any:
    """ "Save to Spotify": on with SPOTIFY_CLIENT_ID, PUBLIC_URL and SPOTIFY_TOKEN_KEY (a bad key stops
    the start with the reason); off otherwise, and the export and share links are the way."""
    from services.spotify_accounts import SpotifySaveService, SpotifyUserApi, TokenCipher

    sp = settings.spotify
    missing = [
        name
        for name, ok in (
            ("SPOTIFY_CLIENT_ID", bool(sp.client_id)),
            ("PUBLIC_URL", bool(settings.public_url)),
            ("SPOTIFY_TOKEN_KEY", bool(sp.token_keys)),
        )
        if not ok
    ]
    if missing:
        log.info("Save to Spotify is off (set %s to turn it on)", ", ".join(missing))
        return SpotifySaveService(sessions, playlists)
    assert sp.client_id and settings.public_url
    api = SpotifyUserApi(
        sp.client_id,
        accounts_url=sp.accounts_url,
        token_url=sp.token_url,
        api_url=sp.api_url,
        timeout=max(sp.timeout, 10.0),
        max_wait=sp.max_retry_after,
    )
    redirect = settings.public_url.rstrip("/") + SPOTIFY_CALLBACK_PATH
    return SpotifySaveService(sessions, playlists, api=api, cipher=TokenCipher(sp.token_keys), redirect_uri=redirect)


def index_dir(settings: Settings) -> Path:
    """Where the recommender's and the search index's snapshots live (built by setup, loaded by serve)."""
    return settings.data_dir / "index"


def model_version(model_path: Path) -> str | None:
    """The genre model's version from its meta.json, without loading the model (None: no model)."""
    import json

    try:
        meta = json.loads((model_path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return str(meta.get("version")) if isinstance(meta, dict) and meta.get("version") else None


def data_mirror(settings: Settings) -> Path | None:
    """ENCORE_DATA_MIRROR, else the shared data folder beside the repository when it exists."""
    from services.datasets import default_mirror

    return settings.encore_data_mirror or default_mirror(REPO_ROOT)


def session_secret(settings: Settings) -> bytes:
    """SESSION_SECRET, else a random key kept in DATA_DIR/session.key (made once, readable by its owner
    only), so that every process of this deployment signs the web page's cookies alike."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    path = settings.data_dir / "session.key"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


def server_limits(settings: Settings) -> ServerLimits:
    from bot.http.server import ServerLimits

    return ServerLimits(
        keepalive_timeout=settings.http.keepalive_timeout,
        body_timeout=settings.http.body_timeout,
        max_per_client=settings.http.max_connections_per_client,
    )


async def start_metrics_server(app: web.Application, settings: Settings) -> web.AppRunner | None:
    """HTTP_METRICS=<port>: /metrics alone, on a port of its own (HTTP_METRICS_HOST, 127.0.0.1 by default)."""
    if not settings.http.metrics.isdigit():
        return None
    from bot.http.app import create_metrics_app
    from bot.http.server import start_server

    return await start_server(
        create_metrics_app(app),
        settings.http.metrics_host,
        int(settings.http.metrics),
        limits=server_limits(settings),
    )


def model_service(settings: Settings) -> ModelService:
    from services.models import ModelService

    return ModelService(settings.data_dir, settings.models_path, docs_dir=ROOT / "docs")


def create_http_app(services: Services, settings: Settings) -> web.Application:
    from bot.http.config import WebConfig
    from handlers.http import create_app

    return create_app(services, WebConfig.from_settings(settings, session_secret=session_secret(settings)))


def _async(fn: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        fn()

    return call


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Encore: music recommendations.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the HTTP server and the Telegram bot").set_defaults(handler=cmd_serve)
    # Hidden (no help): started by `serve` itself when HTTP_WORKERS > 1.
    sub.add_parser("serve-http-worker").set_defaults(handler=cmd_serve_http_worker)
    sub.add_parser("migrate", help="upgrade the database schema").set_defaults(handler=cmd_migrate)
    setup = sub.add_parser("setup", help="fetch the datasets, import the catalogue, train the model when missing")
    setup.add_argument("--no-progress", action="store_true", help="no progress bars")
    setup.set_defaults(handler=cmd_setup)
    from handlers.cli import register_all

    register_all(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if args.command is None:
        args = parser.parse_args(["serve"])
    settings = Settings()
    setup_logging(settings.log_level, settings.log_format)
    try:
        if args.command == "serve":
            args.forked_workers = fork_http_workers(settings)
        return asyncio.run(run_command(args, settings))
    except KeyboardInterrupt:
        return 130


async def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run one command with the composition root's services; commands marked `schema` migrate first."""
    from bot.cli import CliContext

    cli = CliContext(settings, lambda: build_services(settings), models=model_service(settings))
    try:
        if getattr(args, "schema", False):
            await cmd_migrate(args, cli)
        handler: Callable[[argparse.Namespace, CliContext], int | Awaitable[int]] = args.handler
        if inspect.iscoroutinefunction(handler):
            result = await handler(args, cli)
        else:  # blocking commands (training) run off the loop
            result = await asyncio.to_thread(handler, args, cli)
        return int(result or 0)
    finally:
        await cli.close()


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
