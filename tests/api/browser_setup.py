"""Find Debian's Chromium for the Playwright tests, installing it with apt when we can.

Never runs ``playwright install`` (no browser downloads): Playwright drives the system Chromium
through ``executable_path``. Without Chromium the test skips with the reason — except with
CI=true, where it fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
_INSTALL_TIMEOUT = 900


def _find() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _apt_install() -> str:
    """Try `apt-get install -y chromium`; return what went wrong ('' on success)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not root, so apt-get cannot install it"
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(command)} failed: {exc}"
        if done.returncode != 0:
            return f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-300:]}"
    # Cosmetic (emoji on the buttons in screenshots): best effort, never a reason to skip.
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "fonts-noto-color-emoji"],
        env=env,
        capture_output=True,
        timeout=_INSTALL_TIMEOUT,
        check=False,
    )
    return ""


def require_chromium() -> str:
    """The path of a Chromium executable, or skip (fail with CI=true) saying why."""
    path = _find()
    if path:
        return path
    problem = _apt_install()
    path = _find()
    if path:
        return path
    reason = f"headless Chromium is not installed ({problem or 'apt-get install chromium found nothing'})"
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true forbids skipping", pytrace=False)
    pytest.skip(reason)
    raise AssertionError("unreachable")


def require_playwright() -> None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError as exc:
        reason = f"the playwright package is missing ({exc})"
        if IN_CI:
            pytest.fail(f"{reason}, and CI=true forbids skipping", pytrace=False)
        pytest.skip(reason)


@asynccontextmanager
async def launch_chromium() -> AsyncIterator[Any]:
    """Headless Debian Chromium through Playwright (skips, or fails with CI=true, without them)."""
    require_playwright()
    executable = require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


def watch_errors(page: Any) -> list[str]:
    """The page's script errors and console errors, collected as they happen."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    return errors
