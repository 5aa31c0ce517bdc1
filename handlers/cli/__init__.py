"""Command-line delivery: each module adds its subcommands to `main.py`'s parser."""

from __future__ import annotations

import argparse

from handlers.cli import catalog, ml, providers, recs

MODULES = (catalog, ml, providers, recs)


def register_all(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for module in MODULES:
        module.register(subparsers)
