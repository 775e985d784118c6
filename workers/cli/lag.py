"""`orgstream lag`: the worker group's lag per partition and in total."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import orjson

from workers.cli.options import Commands, config_option, settings_of
from workers.kafka.lag import as_table, lag_targets, measure_lag


def register(commands: Commands) -> None:
    lag = commands.add_parser(
        "lag", help="consumer lag per partition and in total, in events and in seconds"
    )
    config_option(lag)
    lag.add_argument("--json", action="store_true", help="one JSON object")
    lag.add_argument(
        "--stage",
        choices=("worker", "resolver", "mirror"),
        default="worker",
        help="whose lag: the worker's group (default), the resolver's or the mirror's",
    )
    lag.add_argument(
        "--watch", type=float, metavar="SECONDS", help="measure again every SECONDS, until ^C"
    )
    lag.add_argument(
        "--fail-over",
        type=int,
        metavar="N",
        help="exit 1 when the total lag is above N (for cron and alerting)",
    )
    lag.set_defaults(run=_lag)


def _lag(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    kafka = settings.kafka
    topic, group = lag_targets(kafka, settings.feed.enabled)[args.stage]
    while True:
        measured = asyncio.run(measure_lag(kafka.bootstrap_servers, topic, group))
        print(orjson.dumps(measured.to_dict()).decode() if args.json else as_table(measured))
        if args.fail_over is not None and measured.total > args.fail_over:
            print(f"orgstream lag: {measured.total} > {args.fail_over}", file=sys.stderr)
            return 1
        if args.watch is None:
            return 0
        time.sleep(args.watch)
