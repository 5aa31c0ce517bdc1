"""`serve` starts without the training stack: scikit-learn, scipy.stats and pandas cost ~1.5 s of a
start and ~100 MiB of RSS (bench/bench_start.py), and nothing `serve` does before it listens uses
them (the genre model is numpy arrays, `ml/lean.py`). The CLI's parser is built at every start, so
its modules must not import them at module level either."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SERVE_PATH = """
import sys
import main
main.build_parser()
import bot.http.server, bot.http.workers, bot.scheduler, bot.telegram.runtime, handlers.telegram
import handlers.http, services.container, services.recommender, services.search, services.genre
heavy = sorted(m for m in ("pandas", "sklearn", "scipy.stats") if m in sys.modules)
print(",".join(heavy))
"""


def test_the_serve_path_imports_no_training_stack() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVE_PATH], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "", f"imported at start: {out.stdout.strip()}"
