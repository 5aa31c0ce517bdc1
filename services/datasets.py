"""Bringing the datasets in: copied from a local mirror or downloaded, then checked and normalised
before they are used (what a dataset is, and how it is read and checked: ml.pipeline.datasets).

Download: into ``<filename>.part``, resumed with an HTTP ``Range`` header (a ``206`` appends, a
server that ignores the range and answers ``200`` restarts the file), retried on a cut connection.
The finished ``.part`` is schema-checked, normalised (a leading unnamed index column, as in the
Hugging Face copy, is dropped; the 114-genre file is stored gzip-compressed whatever the source
format) and only then renamed into place, so a file under the final name has always passed the
check.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import logging
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO

import aiohttp

from ml.pipeline.datasets import (
    DATASETS,
    DEFAULT_URLS,
    INDEX_COLUMN,
    DatasetError,
    DatasetSpec,
    check_schema,
    is_gzip,
)
from ml.progress import Bars, no_bars
from services.retry import RetriesExhausted, RetryPolicy, TryAgain

log = logging.getLogger(__name__)
_CHUNK = 1 << 16


def default_mirror(repo_root: Path) -> Path | None:
    """The shared mirror next to the repository (``../shared/data``), when it exists."""
    candidate = (repo_root / ".." / "shared" / "data").resolve()
    return candidate if candidate.is_dir() else None


async def ensure_datasets(
    raw_dir: Path,
    *,
    mirror: Path | None,
    urls: Mapping[str, str] = DEFAULT_URLS,
    progress: Bars = no_bars,
    specs: Mapping[str, DatasetSpec] = DATASETS,
    only: tuple[str, ...] | None = None,
    attempts: int = 5,
    read_timeout: float = 60.0,
) -> dict[str, Path]:
    """Make sure each dataset is in `raw_dir` and passes its schema check; return name → path.

    A file already in place is re-checked and kept when it passes. Otherwise it comes from
    `mirror/<filename>` when that exists, else from `urls[name]`.
    """
    await asyncio.to_thread(raw_dir.mkdir, parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for name in only or tuple(specs):
        spec = specs[name]
        target = raw_dir / spec.filename
        if target.exists():
            try:
                await asyncio.to_thread(check_schema, target, spec)
            except DatasetError as exc:
                log.warning("%s is in place but fails the check (%s); fetching it again", target, exc.message)
            else:
                log.info("%s: present and valid", target)
                out[name] = target
                continue
        source = mirror / spec.filename if mirror is not None else None
        if source is not None and source.is_file():
            await _copy_from_mirror(source, target, spec, progress=progress)
        else:
            if mirror is not None:
                log.warning("the mirror %s has no %s; downloading the original", mirror, spec.filename)
            if name not in urls:
                raise DatasetError(f"{spec.filename}: not in the mirror and no download URL is configured")
            log.warning(
                "downloading the public original of %s: it includes rows the project withheld for "
                "evaluation (SOURCES.md); prefer the mirror for training and validation",
                spec.filename,
            )
            await download_dataset(
                urls[name], target, spec, progress=progress, attempts=attempts, read_timeout=read_timeout
            )
        out[name] = target
    return out


async def _copy_from_mirror(source: Path, target: Path, spec: DatasetSpec, *, progress: Bars) -> None:
    part = target.with_name(target.name + ".part")
    log.info("copying %s from the mirror %s", spec.filename, source.parent)
    try:
        await asyncio.to_thread(check_schema, source, spec)
    except DatasetError as exc:
        raise DatasetError(f"the mirror copy is unusable: {exc.message}") from exc
    await asyncio.to_thread(_copy_file, source, part, progress)
    await _finish(part, target, spec)


def _copy_file(source: Path, dest: Path, progress: Bars) -> None:
    total = source.stat().st_size
    with (
        source.open("rb") as src,
        dest.open("wb") as dst,
        progress(total=total, unit="B", unit_scale=True, desc=source.name) as bar,
    ):
        while chunk := src.read(1 << 20):
            dst.write(chunk)
            bar.update(len(chunk))


async def _finish(part: Path, target: Path, spec: DatasetSpec) -> None:
    """Check the complete `.part`, normalise it into its final format and rename it into place."""
    try:
        report = await asyncio.to_thread(check_schema, part, spec)
    except DatasetError as exc:
        await asyncio.to_thread(part.unlink, missing_ok=True)
        raise DatasetError(f"{target.name}: refused: {exc.message}") from exc
    await asyncio.to_thread(_normalise, part, target, spec)
    log.info("%s: %s rows, ready at %s", target.name, f"{report.rows:,}", target)


def _normalise(part: Path, target: Path, spec: DatasetSpec) -> None:
    """Drop a leading index column and (de)compress as the spec says; atomic rename at the end."""
    gz = is_gzip(part)
    with _open_text(part, gz) as fh:
        header = next(csv.reader([fh.readline()]), [])
    has_index = bool(header) and bool(INDEX_COLUMN.match(header[0]))
    if not has_index and gz == spec.compress:
        os.replace(part, target)
        return
    tmp = target.with_name(target.name + ".tmp")
    with _open_text(part, gz) as src:
        if spec.compress:
            raw = tmp.open("wb")
            gzf = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
            dst: IO[str] = io.TextIOWrapper(gzf, encoding="utf-8", newline="")
        else:
            raw = None
            dst = tmp.open("w", encoding="utf-8", newline="")
        try:
            if has_index:
                writer = csv.writer(dst, lineterminator="\n")
                for row in csv.reader(src):
                    writer.writerow(row[1:])
            else:
                shutil.copyfileobj(src, dst)
        finally:
            dst.close()
            if raw is not None:
                raw.close()
    os.replace(tmp, target)
    part.unlink(missing_ok=True)


def _open_text(path: Path, gz: bool) -> IO[str]:
    if gz:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


async def download_dataset(
    url: str,
    target: Path,
    spec: DatasetSpec,
    *,
    progress: Bars = no_bars,
    attempts: int = 5,
    read_timeout: float = 60.0,
    retry_delay: float = 1.0,
    max_retry_after: float = 120.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Path:
    """Download `url` into `target` (resumable through `<target>.part`), check it, rename it.

    At most `attempts` requests, each resuming where the last stopped, with jittered exponential
    backoff from `retry_delay` seconds (or the server's Retry-After, up to `max_retry_after`)."""
    part = target.with_name(target.name + ".part")
    client_timeout = aiohttp.ClientTimeout(total=None, sock_connect=read_timeout, sock_read=read_timeout)
    policy = RetryPolicy(max(0, attempts - 1), max_retry_after, retry_delay, max(retry_delay, 30.0))
    async with aiohttp.ClientSession(timeout=client_timeout, auto_decompress=False) as http:

        async def attempt() -> None:
            try:
                await _fetch_once(http, url, part, progress=progress)
            except (aiohttp.ClientError, TimeoutError) as exc:
                have = await asyncio.to_thread(_size, part)
                raise TryAgain(f"{str(exc) or type(exc).__name__} after {have} bytes") from exc

        try:
            await policy.run(f"download {target.name}", attempt, sleep=sleep)
        except RetriesExhausted as exc:
            if exc.too_long:
                raise DatasetError(
                    f"{target.name}: {url} asks to wait {exc.retry_after:.0f}s ({exc.failure}); "
                    f"run again later to resume from {part.name}"
                ) from exc
            raise DatasetError(
                f"{target.name}: download from {url} failed after {exc.attempts} attempts ({exc.failure}); "
                f"run again to resume from {part.name}"
            ) from exc
    await _finish(part, target, spec)
    return target


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


async def _fetch_once(http: aiohttp.ClientSession, url: str, part: Path, *, progress: Bars) -> None:
    """One request; returns when `part` holds the whole file. `TryAgain` for what may pass (5xx,
    429, a cut transfer, a bad resume); `DatasetError` for what will not (other 4xx)."""
    have = await asyncio.to_thread(_size, part)
    # Byte offsets must be those of the file itself: no transfer compression.
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    async with http.get(url, headers=headers) as resp:
        if resp.status == 416 and have:
            # Nothing past what we have: complete when the server's size says so, else restart.
            match = re.search(r"/(\d+)", resp.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == have:
                return
            await asyncio.to_thread(part.unlink)
            raise TryAgain(f"range not satisfiable for a {have}-byte partial file; restarting")
        if resp.status >= 500 or resp.status == 429:
            raise TryAgain(f"HTTP {resp.status} {resp.reason}", _seconds(resp.headers.get("Retry-After")))
        if resp.status >= 400:
            name = part.name.removesuffix(".part")
            raise DatasetError(f"{name}: {url} answered HTTP {resp.status} {resp.reason}")
        if resp.status == 206:
            match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                await asyncio.to_thread(part.unlink)
                raise TryAgain("the server resumed at the wrong offset; restarting")
            start, mode = have, "ab"
            total = int(match.group(3)) if match.group(3) != "*" else None
        else:
            if have:
                log.info("%s: the server ignored the range request; downloading from the start", url)
            start, mode = 0, "wb"
            total = resp.content_length
        expected = (total - start) if total is not None else resp.content_length
        received = 0
        with (
            part.open(mode) as fh,
            progress(
                total=total, initial=start, unit="B", unit_scale=True, desc=part.name.removesuffix(".part")
            ) as bar,
        ):
            async for chunk in resp.content.iter_chunked(_CHUNK):
                fh.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if expected is not None and received < expected:
            raise TryAgain(f"connection closed after {received} of {expected} bytes")


def _seconds(value: str | None) -> float | None:
    """A Retry-After in seconds; None when absent or an HTTP date (backoff is used then)."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
