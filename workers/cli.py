"""`orgstream`: the command line. Parses, loads the configuration, hands over; nothing more.

Exit codes: 0 ok, 1 the demo's directories differ, 2 bad configuration or usage, 3 a dev
component could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from schemas.config import CONFIG_ENV, ConfigError, Settings, load_settings
from workers.devstack import DevStackError
from workers.logs import configure_logging

_REPO_ROOT = Path(__file__).resolve().parents[1]


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

    receiver = commands.add_parser("receiver", help="serve the vendor callback endpoints")
    _config_option(receiver)
    receiver.set_defaults(run=_receiver)

    worker = commands.add_parser("worker", help="apply events from the topic to the SCIM target")
    _config_option(worker)
    worker.set_defaults(run=_worker)

    dev = commands.add_parser(
        "dev", help="run the whole stack on this machine (Tansu, scim2-server, receiver, worker)"
    )
    dev.add_argument(
        "--dir",
        type=Path,
        default=Path(".orgstream"),
        help="where the dev config and logs live (default .orgstream)",
    )
    dev.set_defaults(run=_dev)

    demo = commands.add_parser(
        "demo", help="dev stack + simulated WeCom: play a day of changes, compare the directories"
    )
    demo.add_argument("--dir", type=Path, default=Path(".orgstream/demo"))
    demo.set_defaults(run=_demo)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"orgstream.toml (default: ${CONFIG_ENV}, else ./orgstream.toml)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    path = args.config or Path(os.environ.get(CONFIG_ENV, "orgstream.toml"))
    return load_settings(path)


def _receiver(args: argparse.Namespace) -> int:
    from workers.run import receiver_server

    asyncio.run(receiver_server(_settings(args)).serve())
    return 0


def _worker(args: argparse.Namespace) -> int:
    from workers.run import run_worker

    asyncio.run(run_worker(_settings(args)))
    return 0


def _dev(args: argparse.Namespace) -> int:
    from workers.dev import prepare_dev, run_dev

    return asyncio.run(run_dev(prepare_dev(args.dir)))


def _demo(args: argparse.Namespace) -> int:
    # The demo drives the vendor simulator, which lives with the tests: run it from a checkout.
    if not (_REPO_ROOT / "tests" / "demo.py").exists():
        print(
            "orgstream demo runs from a source checkout (it uses tests/simulator)", file=sys.stderr
        )
        return 2
    sys.path.insert(0, str(_REPO_ROOT))
    demo = importlib.import_module("tests.demo")
    code: int = asyncio.run(demo.run_demo(args.dir))
    return code


if __name__ == "__main__":
    sys.exit(main())
