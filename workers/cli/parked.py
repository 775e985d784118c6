"""`orgstream parked` and `orgstream approve-deletions`: what waits, and releasing what is held."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import orjson

from workers.cli.options import Commands, config_option, settings_of
from workers.cli.printable import printable
from workers.store.approvals import approve_deletions, parked_events
from workers.store.parking import ParkedEvent


def register(commands: Commands) -> None:
    parked = commands.add_parser(
        "parked", help="events waiting: for a quarantined target, a dependency, or approval"
    )
    config_option(parked)
    parked.add_argument("--tenant", help="only this tenant")
    parked.add_argument("--state", choices=("parked", "held", "released"), help="only these")
    parked.add_argument("--json", action="store_true", help="one JSON object per line")
    parked.set_defaults(run=_parked)

    approve = commands.add_parser(
        "approve-deletions",
        help="release the deletions the mass-deletion guard holds for a tenant",
    )
    config_option(approve)
    approve.add_argument("--tenant", required=True, help="the tenant whose deletions to release")
    approve.add_argument(
        "--dry-run", action="store_true", help="list the held deletions, release nothing"
    )
    approve.set_defaults(run=_approve_deletions)


def _parked(args: argparse.Namespace) -> int:
    waiting = asyncio.run(parked_events(settings_of(args).store.url, args.tenant, args.state))
    print(as_lines(waiting, args.json))
    return 0


def _approve_deletions(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if settings.tenant(args.tenant) is None:
        print(f"orgstream approve-deletions: no tenant {args.tenant!r}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(as_lines(asyncio.run(parked_events(settings.store.url, args.tenant, "held")), False))
        return 0
    released = asyncio.run(approve_deletions(settings.store.url, args.tenant))
    print(f"released {released} held deletion(s) of {args.tenant}; the worker applies them next")
    return 0


def as_lines(parked: Sequence[ParkedEvent], as_json: bool) -> str:
    if as_json:
        return "\n".join(
            orjson.dumps(
                {
                    "tenant": p.tenant,
                    "entity": p.entity_key,
                    "state": p.state,
                    "reason": p.reason,
                    "parked_at": p.parked_at,
                    "attempts": p.attempts,
                    "origin": p.origin,
                }
            ).decode()
            for p in parked
        )
    lines = [
        printable(
            f"{p.parked_at[:19].replace('T', ' ')}  {p.tenant}  {p.entity_key}  {p.state}  "
            f"{p.reason}"
        )
        for p in parked
    ]
    lines.append(f"{len(parked)} event(s) waiting")
    return "\n".join(lines)
