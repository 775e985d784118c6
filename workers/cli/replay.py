"""`orgstream replay`: apply a window of events again, or rewind the worker group."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

import orjson

from schemas.config import Settings
from workers.cli.options import Commands, config_option, settings_of, since
from workers.cli.printable import printable
from workers.cli.progress import terminal_progress
from workers.consume.replay import ReplaySummary, Selection


def register(commands: Commands) -> None:
    replay = commands.add_parser(
        "replay", help="apply the events of a time window again, or rewind the worker group"
    )
    config_option(replay)
    replay.add_argument("--since", type=since, help="window start: ISO 8601, or 2h, 30m, 7d ago")
    replay.add_argument("--until", type=since, help="window end (default: now)")
    replay.add_argument(
        "--from-offset",
        action="append",
        default=[],
        metavar="[PARTITION:]OFFSET",
        help="start at this offset (of one partition, or of every one); repeatable",
    )
    replay.add_argument("--tenant", help="only this tenant's events")
    replay.add_argument("--entity", help="only `user`, `department`, or one: `user:zhangsan`")
    replay.add_argument(
        "--dry-run", action="store_true", help="print the SCIM changes per entity; change nothing"
    )
    replay.add_argument(
        "--rewind-group",
        type=since,
        metavar="TIME",
        help="instead: move the worker group's offsets back to TIME (workers stopped)",
    )
    replay.add_argument(
        "--topic",
        choices=("hints", "records"),
        default="hints",
        help="replay the hints (read the vendor again; with the feed on, re-resolve them into "
        "records) or the directory feed's records (apply them again, no vendor call)",
    )
    replay.add_argument("--json", action="store_true", help="the summary as one JSON object")
    replay.set_defaults(run=_replay)


def _replay(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if args.rewind_group is not None:
        return _rewind(settings, args.rewind_group, args.json)
    try:
        offsets = _from_offsets(args.from_offset)
    except ValueError:
        print("orgstream replay: --from-offset takes OFFSET or PARTITION:OFFSET", file=sys.stderr)
        return 2
    if args.since is None and offsets is None:
        print("orgstream replay: choose --since or --from-offset", file=sys.stderr)
        return 2
    from workers.consume.replay import replay_records, replay_window

    selection = Selection(args.since, args.until, offsets, args.tenant, args.entity)
    if args.topic == "records":
        replaying = replay_records(settings, selection, args.dry_run, terminal_progress)
    elif settings.feed.enabled and not args.dry_run:
        replaying = reresolve(settings, selection)
    else:
        replaying = replay_window(settings, selection, args.dry_run, terminal_progress)
    summary: ReplaySummary = asyncio.run(replaying)
    print(orjson.dumps(summary.to_dict()).decode() if args.json else summary_lines(summary))
    return 0


async def reresolve(settings: Settings, selection: Selection) -> ReplaySummary:
    """With the feed on, replayed hints are resolved again: fresh records on the feed (origin
    `replay`), which the workers' SCIM path and mirror then apply."""
    from workers.consume.parts import worker_parts
    from workers.consume.replay import select
    from workers.resolve.resolver import Resolver
    from workers.store.mirror import open_mirror

    summary = ReplaySummary()
    kafka = settings.kafka
    located = await select(kafka.bootstrap_servers, kafka.topic, selection, summary)
    async with worker_parts(settings) as parts:
        mirror = open_mirror(settings.store.url)
        try:
            resolver = Resolver(settings, parts.appliers, mirror, parts.producer,
                                kafka.resolver_group, origin="replay")  # fmt: skip
            await resolver.handle([record for record, _ in located])
        finally:
            await mirror.aclose()
    for _ in located:
        summary.count("resolved")
    return summary


def _from_offsets(values: list[str]) -> dict[int, int] | None:
    if not values:
        return None
    chosen = {}
    for value in values:
        partition, _, offset = value.rpartition(":")
        chosen[int(partition) if partition else -1] = int(offset)
    return chosen


def _rewind(settings: Settings, moment: datetime, as_json: bool) -> int:
    from workers.kafka.rewind import WorkersStillRunning, rewind_group

    try:
        rewound = asyncio.run(rewind_group(settings.kafka, moment))
    except WorkersStillRunning as exc:
        print(f"orgstream replay: {exc}", file=sys.stderr)
        return 1
    for row in rewound:
        if as_json:
            print(
                orjson.dumps(
                    {"partition": row.partition, "before": row.before, "after": row.after}
                ).decode()
            )
        else:
            print(f"partition {row.partition}: {row.before} -> {row.after}")
    return 0


def summary_lines(summary: ReplaySummary) -> str:
    """The plan of a dry run, then the counts."""
    lines = []
    for plan in summary.plans:
        what = f"{plan['tenant']} {plan['entity']} {plan['entity_id']} ({plan['change']})"
        if plan["problem"]:
            lines.append(printable(f"{what}: cannot plan: {plan['problem']}"))
        for step in plan["plan"]:
            lines.append(printable(f"{what}: {step}"))
    counts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(summary.outcomes.items()))
    lines.append(
        f"{summary.read} event(s) read, {summary.selected} selected, "
        f"{summary.entities} entit(ies) after coalescing: {counts or 'nothing to do'}"
    )
    return "\n".join(lines)
