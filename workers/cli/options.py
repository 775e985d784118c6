"""What every command shares: the `--config` option, loading it, and reading a time."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas.config import CONFIG_ENV, Settings, load_settings

Commands = Any  # argparse's subparsers action (a private type)


def config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"orgstream.toml (default: ${CONFIG_ENV}, else ./orgstream.toml)",
    )


def config_path(args: argparse.Namespace) -> Path:
    """`--config`, else $ORGSTREAM_CONFIG, else ./orgstream.toml."""
    return Path(args.config or os.environ.get(CONFIG_ENV, "orgstream.toml"))


def settings_of(args: argparse.Namespace) -> Settings:
    return load_settings(config_path(args))


def since(text: str) -> datetime:
    """`2h`, `30m`, `7d`, `45s` ago, or an ISO 8601 moment (UTC when it names no zone)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use 2h or 2026-11-22T08:00)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
