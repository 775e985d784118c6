"""`orgstream`: the command line. Parses, loads the configuration, hands over; nothing more.
Each command lives in its own module here, with its options and what it prints.

Exit codes: 0 ok, 1 the demo's directories differ, 2 bad configuration or usage, 3 a dev
component could not start.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from schemas.config import ConfigError
from workers.cli import dlq, history, lag, mirror, parked, replay, serve, sync
from workers.dev.devstack import DevStackError
from workers.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"orgstream: configuration error: {exc}", file=sys.stderr)
        return 2
    except DevStackError as exc:
        print(f"orgstream: {exc}", file=sys.stderr)
        return 3
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orgstream",
        description="Keep a SCIM 2.0 directory in step with WeCom / DingTalk, through Kafka.",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    serve.register(commands)
    history.register(commands)
    sync.register(commands)
    dlq.register(commands)
    replay.register(commands)
    lag.register(commands)
    parked.register(commands)
    mirror.register(commands)
    serve.register_dev(commands)
    return parser
