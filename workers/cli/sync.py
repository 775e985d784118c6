"""`orgstream sync` and `orgstream history --runs`: run one full sync from the command line, and
show the runs as a table a person reads, or as JSON lines."""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import orjson

from schemas.config import Settings
from workers.apply.applier import TenantApplier
from workers.cli.options import Commands, config_option, settings_of
from workers.cli.printable import printable
from workers.cli.progress import ProgressFile, both, step_progress
from workers.cli.pull import pull_tenant, report_json, report_lines
from workers.cli.stack import feed_sync
from workers.consume.parts import worker_parts
from workers.fullsync.feed_sync import preview
from workers.fullsync.run import SyncBusy, SyncContext, SyncOutcome, full_sync, plan_sync
from workers.provision.pull import SourceError
from workers.store.mirror import open_mirror
from workers.store.sync_runs import COUNT_NAMES, SyncRun, open_runs
from workers.vendors.walk import Progress


def register(commands: Commands) -> None:
    sync = commands.add_parser(
        "sync", help="full sync of a tenant: walk the vendor directory, reconcile the target"
    )
    config_option(sync)
    sync.add_argument("--tenant", required=True, help="the tenant to sync")
    sync.add_argument(
        "--dry-run", action="store_true", help="print the plan (counts, each write); change nothing"
    )
    sync.add_argument("--json", action="store_true", help="the outcome as one JSON object")
    sync.add_argument(
        "--to-vendor",
        action="store_true",
        help="the other way: make the vendor equal to the tenant's provisioning_source",
    )
    sync.add_argument(
        "--progress-file",
        type=Path,
        metavar="PATH",
        help="keep the progress as JSON in PATH (step, done, total), for a watcher elsewhere",
    )
    sync.set_defaults(run=_sync)


def _sync(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    if settings.tenant(args.tenant) is None:
        print(f"orgstream sync: no tenant {args.tenant!r}", file=sys.stderr)
        return 2
    if args.to_vendor:
        return _pull(settings, args)
    try:
        progress: Progress = step_progress
        if args.progress_file is not None:
            progress = both(step_progress, ProgressFile(args.progress_file))
        outcome = asyncio.run(sync_tenant(settings, args.tenant, args.dry_run, progress))
    except SyncBusy as exc:
        print(f"orgstream sync: {exc}", file=sys.stderr)
        return 1
    print(outcome_json(outcome, args.tenant) if args.json else outcome_lines(outcome, args.tenant))
    return 0 if outcome.status == "succeeded" else 1


def _pull(settings: Settings, args: argparse.Namespace) -> int:
    try:
        report = asyncio.run(pull_tenant(settings, args.tenant, args.dry_run))
    except (ValueError, SourceError) as exc:
        print(f"orgstream sync --to-vendor: {exc}", file=sys.stderr)
        return 2
    print(report_json(report, args.tenant) if args.json else report_lines(report, args.tenant))
    return 1 if report.refused else 0


def show_runs(args: argparse.Namespace) -> int:
    """`orgstream history --runs`."""
    runs = asyncio.run(listed_runs(settings_of(args), args.tenant, args.limit))
    print(runs_json(runs) if args.json else runs_table(runs))
    return 0


async def sync_tenant(
    settings: Settings, tenant: str, dry_run: bool, progress: Progress = step_progress
) -> SyncOutcome:
    """One full sync (or its plan) of `tenant`, with a progress line on a terminal (and
    wherever else `progress` reports)."""
    async with worker_parts(settings, planning=dry_run) as parts:
        applier = parts.appliers.for_tenant(tenant)
        assert applier is not None  # the command checked the tenant
        if dry_run and settings.feed.enabled:
            mirror = open_mirror(settings.store.url)
            try:
                return await plan_sync(
                    applier, progress, functools.partial(preview, settings, mirror, tenant)
                )
            finally:
                await mirror.aclose()
        if dry_run:
            return await plan_sync(applier, progress)
        context = SyncContext(settings.kafka, parts.runs, parts.parking, parts.producer)
        if not settings.feed.enabled:
            return await _full_sync(tenant, applier, context, progress)
        mirror = open_mirror(settings.store.url)
        try:
            context.feed = feed_sync(settings, parts, mirror)
            try:
                return await _full_sync(tenant, applier, context, progress)
            finally:
                await context.feed.aclose()
        finally:
            await mirror.aclose()


async def _full_sync(
    tenant: str, applier: TenantApplier, context: SyncContext, progress: Progress
) -> SyncOutcome:
    outcome = await full_sync(tenant, applier, context, "manual", progress)
    assert outcome is not None  # no `only_if`: it always runs
    return outcome


def outcome_lines(outcome: SyncOutcome, tenant: str) -> str:
    counts = outcome.counts.to_dict()
    head = "plan" if outcome.run_id == "dry-run" else f"run {outcome.run_id}"
    lines = [f"{head} of {tenant}: {outcome.status}"]
    lines.append("  " + ", ".join(f"{name} {counts[name]}" for name in COUNT_NAMES))
    if outcome.rechecked:
        lines.append(f"  {outcome.rechecked} entities changed during the sync: re-read after it")
    lines += [f"  error: {printable(e)}" for e in outcome.errors]
    if outcome.plan:
        lines.append(f"  {len(outcome.plan)} writes it would make:")
        lines += [f"    {printable(write)}" for write in outcome.plan]
    return "\n".join(lines)


def outcome_json(outcome: SyncOutcome, tenant: str) -> str:
    return orjson.dumps(
        {
            "run_id": outcome.run_id,
            "tenant": tenant,
            "status": outcome.status,
            "counts": outcome.counts.to_dict(),
            "errors": outcome.errors,
            "rechecked": outcome.rechecked,
            "plan": outcome.plan,
        }
    ).decode()


async def listed_runs(settings: Settings, tenant: str | None, limit: int) -> list[SyncRun]:
    runs = open_runs(settings.store.url)
    try:
        return await runs.listed(tenant, limit)
    finally:
        await runs.aclose()


def runs_json(runs: Sequence[SyncRun]) -> str:
    return "\n".join(orjson.dumps(run.to_dict()).decode() for run in runs)


_HEADINGS = ("started", "tenant", "trigger", "status", "seconds", *COUNT_NAMES, "errors")


def runs_table(runs: Sequence[SyncRun]) -> str:
    """Newest first; the first error of each run under it."""
    rows = []
    for run in runs:
        seconds = "-"
        if run.ended_at:
            ended = datetime.fromisoformat(run.ended_at.replace("Z", "+00:00")).timestamp()
            seconds = f"{ended - run.started_epoch:.1f}"
        cells = [
            run.started_at[:19].replace("T", " "),
            run.tenant,
            run.trigger,
            run.status,
            seconds,
            *(str(run.counts.get(name, "-")) for name in COUNT_NAMES),
            str(len(run.errors)),
        ]
        rows.append(([printable(c) for c in cells], [printable(e) for e in run.errors[:1]]))
    widths = [max([len(h), *(len(c[i]) for c, _ in rows)]) for i, h in enumerate(_HEADINGS)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(_HEADINGS, widths, strict=True))]
    for cells, errors in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
        lines += [f"    ↳ {e}" for e in errors]
    return "\n".join(line.rstrip() for line in lines)
