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
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from schemas.config import CONFIG_ENV, ConfigError, Settings, load_settings
from workers.devstack import DevStackError
from workers.history import OUTCOMES
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

    history = commands.add_parser(
        "history", help="show the sync history: each event's outcome, retries and errors"
    )
    _config_option(history)
    history.add_argument("--tenant", help="only this tenant")
    history.add_argument("--entity-id", help="only this user or department id")
    history.add_argument("--outcome", choices=OUTCOMES, help="only this outcome")
    history.add_argument(
        "--since", type=_since, help="only newer entries: ISO 8601, or relative like 2h, 30m, 7d"
    )
    history.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    history.add_argument("--json", action="store_true", help="one JSON object per line")
    history.add_argument(
        "--runs", action="store_true", help="full-sync runs instead: counts, status, errors"
    )
    history.set_defaults(run=_history)

    sync = commands.add_parser(
        "sync", help="full sync of a tenant: walk the vendor directory, reconcile the target"
    )
    _config_option(sync)
    sync.add_argument("--tenant", required=True, help="the tenant to sync")
    sync.add_argument(
        "--dry-run", action="store_true", help="print the plan (counts, each write); change nothing"
    )
    sync.add_argument("--json", action="store_true", help="the outcome as one JSON object")
    sync.set_defaults(run=_sync)

    dlq = commands.add_parser("dlq", help="list dead-lettered events, or put them back")
    dlq_commands = dlq.add_subparsers(title="dlq commands", required=True, metavar="ACTION")
    dlq_list = dlq_commands.add_parser("list", help="what failed, why, and where it came from")
    _config_option(dlq_list)
    dlq_list.add_argument("--tenant", help="only this tenant")
    dlq_list.add_argument("--json", action="store_true", help="one JSON object per line")
    dlq_list.set_defaults(run=_dlq_list)
    dlq_redrive = dlq_commands.add_parser(
        "redrive", help="put chosen dead letters back on the topic, once the cause is fixed"
    )
    _config_option(dlq_redrive)
    dlq_redrive.add_argument(
        "--record",
        action="append",
        default=[],
        metavar="PARTITION:OFFSET",
        help="one dead letter, as `dlq list` shows it (repeatable)",
    )
    dlq_redrive.add_argument("--tenant", help="every dead letter of this tenant")
    dlq_redrive.add_argument("--error-contains", help="every dead letter whose error has this text")
    dlq_redrive.add_argument("--all", action="store_true", help="every dead letter")
    dlq_redrive.add_argument("--dry-run", action="store_true", help="say what would go back")
    dlq_redrive.set_defaults(run=_dlq_redrive)

    replay = commands.add_parser(
        "replay", help="apply the events of a time window again, or rewind the worker group"
    )
    _config_option(replay)
    replay.add_argument("--since", type=_since, help="window start: ISO 8601, or 2h, 30m, 7d ago")
    replay.add_argument("--until", type=_since, help="window end (default: now)")
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
        type=_since,
        metavar="TIME",
        help="instead: move the worker group's offsets back to TIME (workers stopped)",
    )
    replay.add_argument("--json", action="store_true", help="the summary as one JSON object")
    replay.set_defaults(run=_replay)

    lag = commands.add_parser(
        "lag", help="consumer lag per partition and in total, in events and in seconds"
    )
    _config_option(lag)
    lag.add_argument("--json", action="store_true", help="one JSON object")
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

    parked = commands.add_parser(
        "parked", help="events waiting: for a quarantined target, a dependency, or approval"
    )
    _config_option(parked)
    parked.add_argument("--tenant", help="only this tenant")
    parked.add_argument("--state", choices=("parked", "held", "released"), help="only these")
    parked.add_argument("--json", action="store_true", help="one JSON object per line")
    parked.set_defaults(run=_parked)

    approve = commands.add_parser(
        "approve-deletions",
        help="release the deletions the mass-deletion guard holds for a tenant",
    )
    _config_option(approve)
    approve.add_argument("--tenant", required=True, help="the tenant whose deletions to release")
    approve.add_argument(
        "--dry-run", action="store_true", help="list the held deletions, release nothing"
    )
    approve.set_defaults(run=_approve_deletions)

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


def _history(args: argparse.Namespace) -> int:
    from workers.history import HistoryEntry, HistoryQuery, open_history
    from workers.history_view import as_json, as_table

    if args.runs:
        return _runs(args)
    url = _settings(args).store.url
    query = HistoryQuery(args.tenant, args.entity_id, args.outcome, args.since, args.limit)

    async def read() -> list[HistoryEntry]:
        store = open_history(url)
        try:
            return await store.query(query)
        finally:
            await store.aclose()

    entries = asyncio.run(read())
    print(as_json(entries) if args.json else as_table(entries))
    return 0


def _runs(args: argparse.Namespace) -> int:
    from workers.sync_view import listed_runs, runs_json, runs_table

    runs = asyncio.run(listed_runs(_settings(args), args.tenant, args.limit))
    print(runs_json(runs) if args.json else runs_table(runs))
    return 0


def _sync(args: argparse.Namespace) -> int:
    from workers.full_sync import SyncBusy
    from workers.sync_view import outcome_json, outcome_lines, sync_tenant

    settings = _settings(args)
    if settings.tenant(args.tenant) is None:
        print(f"orgstream sync: no tenant {args.tenant!r}", file=sys.stderr)
        return 2
    try:
        outcome = asyncio.run(sync_tenant(settings, args.tenant, args.dry_run))
    except SyncBusy as exc:
        print(f"orgstream sync: {exc}", file=sys.stderr)
        return 1
    print(outcome_json(outcome, args.tenant) if args.json else outcome_lines(outcome, args.tenant))
    return 0 if outcome.status == "succeeded" else 1


def _dlq_list(args: argparse.Namespace) -> int:
    from workers.dlq import dead_letters

    records = asyncio.run(dead_letters(_settings(args).kafka))
    shown = [r for r in records if args.tenant is None or r.tenant == args.tenant]
    if args.json:
        for record in shown:
            print(orjson.dumps(record.summary()).decode())
    else:
        for record in shown:
            what = f"{record.tenant}:{record.entity}:{record.entity_id}" if record.tenant else "?"
            print(f"{record.position}  {record.dead_lettered_at}  {what}  {record.error}")
        print(f"{len(shown)} dead letter(s)")
    return 0


def _dlq_redrive(args: argparse.Namespace) -> int:
    from workers.dlq import Selection, dead_letters, redrive

    selection = Selection(tuple(args.record), args.tenant, args.error_contains, args.all)
    if not (selection.positions or selection.tenant or selection.error_contains or args.all):
        print(
            "orgstream dlq redrive: choose --record, --tenant, --error-contains or --all",
            file=sys.stderr,
        )
        return 2
    kafka = _settings(args).kafka

    async def choose_and_redrive() -> int:
        chosen = [r for r in await dead_letters(kafka) if selection.chooses(r)]
        verb = "would redrive" if args.dry_run else "redrive"
        for record in chosen:
            print(f"{verb} {record.position}  {record.error}")
        if not args.dry_run and chosen:
            await redrive(kafka, chosen)
        return len(chosen)

    count = asyncio.run(choose_and_redrive())
    print(f"{count} dead letter(s) {'chosen' if args.dry_run else 'put back'}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    settings = _settings(args)
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
    from workers.replay import ReplaySummary, Selection, replay_window, summary_lines

    selection = Selection(args.since, args.until, offsets, args.tenant, args.entity)
    summary: ReplaySummary = asyncio.run(replay_window(settings, selection, args.dry_run))
    print(orjson.dumps(summary.to_dict()).decode() if args.json else summary_lines(summary))
    return 0


def _from_offsets(values: list[str]) -> dict[int, int] | None:
    if not values:
        return None
    chosen = {}
    for value in values:
        partition, _, offset = value.rpartition(":")
        chosen[int(partition) if partition else -1] = int(offset)
    return chosen


def _rewind(settings: Settings, moment: datetime, as_json: bool) -> int:
    from workers.rewind import WorkersStillRunning, rewind_group

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


def _lag(args: argparse.Namespace) -> int:
    from workers.lag import as_table, measure_lag

    kafka = _settings(args).kafka
    while True:
        measured = asyncio.run(
            measure_lag(kafka.bootstrap_servers, kafka.topic, kafka.consumer_group)
        )
        print(orjson.dumps(measured.to_dict()).decode() if args.json else as_table(measured))
        if args.fail_over is not None and measured.total > args.fail_over:
            print(f"orgstream lag: {measured.total} > {args.fail_over}", file=sys.stderr)
            return 1
        if args.watch is None:
            return 0
        time.sleep(args.watch)


def _parked(args: argparse.Namespace) -> int:
    from workers.parked_view import as_lines, parked_events

    waiting = asyncio.run(parked_events(_settings(args).store.url, args.tenant, args.state))
    print(as_lines(waiting, args.json))
    return 0


def _approve_deletions(args: argparse.Namespace) -> int:
    from workers.parked_view import approve_deletions, as_lines, parked_events

    settings = _settings(args)
    if settings.tenant(args.tenant) is None:
        print(f"orgstream approve-deletions: no tenant {args.tenant!r}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(as_lines(asyncio.run(parked_events(settings.store.url, args.tenant, "held")), False))
        return 0
    released = asyncio.run(approve_deletions(settings.store.url, args.tenant))
    print(f"released {released} held deletion(s) of {args.tenant}; the worker applies them next")
    return 0


def _since(text: str) -> datetime:
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
