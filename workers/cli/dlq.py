"""`orgstream dlq list` and `orgstream dlq redrive`: what failed and why; putting it back."""

from __future__ import annotations

import argparse
import asyncio
import sys
from getpass import getuser

import orjson

from workers.cli.options import Commands, config_option, settings_of
from workers.cli.printable import printable
from workers.kafka.dlq import Selection, dead_letters, redrive
from workers.store.redriven import open_redriven


def register(commands: Commands) -> None:
    dlq = commands.add_parser("dlq", help="list dead-lettered events, or put them back")
    dlq_commands = dlq.add_subparsers(title="dlq commands", required=True, metavar="ACTION")
    dlq_list = dlq_commands.add_parser("list", help="what failed, why, and where it came from")
    config_option(dlq_list)
    dlq_list.add_argument("--tenant", help="only this tenant")
    dlq_list.add_argument("--json", action="store_true", help="one JSON object per line")
    dlq_list.set_defaults(run=_list)
    dlq_redrive = dlq_commands.add_parser(
        "redrive", help="put chosen dead letters back on the topic, once the cause is fixed"
    )
    config_option(dlq_redrive)
    dlq_redrive.add_argument(
        "--record",
        action="append",
        default=[],
        metavar="POSITION",
        help="one dead letter by its position as `dlq list` shows it: PARTITION:OFFSET, or "
        "TOPIC:PARTITION:OFFSET on a stage's own dead-letter topic (repeatable)",
    )
    dlq_redrive.add_argument("--tenant", help="every dead letter of this tenant")
    dlq_redrive.add_argument("--error-contains", help="every dead letter whose error has this text")
    dlq_redrive.add_argument("--all", action="store_true", help="every dead letter")
    dlq_redrive.add_argument("--dry-run", action="store_true", help="say what would go back")
    dlq_redrive.set_defaults(run=_redrive)


def _list(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    records = asyncio.run(dead_letters(settings.kafka, settings.feed.enabled))
    shown = [r for r in records if args.tenant is None or r.tenant == args.tenant]
    if args.json:
        for record in shown:
            print(orjson.dumps(record.summary()).decode())
    else:
        for record in shown:
            what = f"{record.tenant}:{record.entity}:{record.entity_id}" if record.tenant else "?"
            print(
                printable(f"{record.position}  {record.dead_lettered_at}  {what}  {record.error}")
            )
        print(f"{len(shown)} dead letter(s)")
    return 0


def _redrive(args: argparse.Namespace) -> int:
    selection = Selection(tuple(args.record), args.tenant, args.error_contains, args.all)
    if not (selection.positions or selection.tenant or selection.error_contains or args.all):
        print(
            "orgstream dlq redrive: choose --record, --tenant, --error-contains or --all",
            file=sys.stderr,
        )
        return 2
    settings = settings_of(args)
    kafka = settings.kafka

    async def choose_and_redrive() -> int:
        listed = await dead_letters(kafka, settings.feed.enabled)
        picked = [r for r in listed if selection.chooses(r)]
        for record in (r for r in picked if r.stuck):
            print(printable(f"cannot redrive {record.position}: its record is unreadable"))
        chosen = [r for r in picked if not r.stuck]
        verb = "would redrive" if args.dry_run else "redrive"
        for record in chosen:
            print(printable(f"{verb} {record.position}  {record.error}"))
        if not args.dry_run and chosen:
            await redrive(kafka, chosen)
            log = open_redriven(settings.store.url)
            try:
                await log.mark([(r.topic, r.position) for r in chosen], _who())
            finally:
                await log.aclose()
        return len(chosen)

    count = asyncio.run(choose_and_redrive())
    print(f"{count} dead letter(s) {'chosen' if args.dry_run else 'put back'}")
    return 0


def _who() -> str:
    """`cli:<login>` for the re-drive marks the console shows; a container may have no login."""
    try:
        return f"cli:{getuser()}"
    except (KeyError, OSError):
        return "cli"
