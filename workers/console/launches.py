"""Full syncs and dry runs started from the console: each one is `orgstream sync` as a child
process (the same command an operator types, so the same lease, run row and guard), with its
progress in a small file the Runs page reads and its JSON outcome kept for the page that shows
what it did or would do. Each start and each end is in the audit trail."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from workers.store.audit import AuditTrail


@dataclass
class Launch:
    key: str
    tenant: str
    dry_run: bool
    who: str
    started: float
    folder: Path
    exit_code: int | None = None
    ended: float | None = None
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def action(self) -> str:
        return "dry-run" if self.dry_run else "sync"

    @property
    def running(self) -> bool:
        """Until the child has said how it ended (or has ended without saying)."""
        return self.exit_code is None and self.outcome() is None

    def progress(self) -> dict[str, Any] | None:
        """The latest step, as the child wrote it; None before its first."""
        return _json_object(self.folder / "progress.json")

    def outcome(self) -> dict[str, Any] | None:
        """`orgstream sync --json`'s object, once the run ended with one."""
        return _json_object(self.folder / "outcome.json")

    def errors(self) -> str:
        """What the child said on stderr, its last 4 KB (a refused lease, a bad tenant)."""
        try:
            with (self.folder / "stderr.log").open("rb") as log:
                log.seek(0, 2)
                log.seek(max(0, log.tell() - 4096))
                text = log.read()
        except OSError:
            return ""
        return text.decode("utf-8", "replace")


class Launcher:
    def __init__(self, config: Path | None, audit: AuditTrail) -> None:
        self._config = config
        self._audit = audit
        self._root = Path(tempfile.mkdtemp(prefix="orgstream-console-runs-"))
        self.launches: dict[str, Launch] = {}

    @property
    def can_start(self) -> bool:
        """The console was started with a configuration file the child can read."""
        return self._config is not None

    async def start(self, tenant: str, dry_run: bool, who: str) -> Launch:
        assert self._config is not None  # the page offers no start otherwise
        key = secrets.token_hex(6)
        folder = self._root / key
        folder.mkdir(parents=True)  # the root too, should something have cleaned /tmp
        argv = [
            *(sys.executable, "-m", "workers.cli", "sync", "--config", str(self._config)),
            *("--tenant", tenant, "--json", "--progress-file", str(folder / "progress.json")),
        ]
        if dry_run:
            argv.append("--dry-run")
        with (folder / "outcome.json").open("wb") as out, (folder / "stderr.log").open("wb") as err:
            child = await asyncio.create_subprocess_exec(*argv, stdout=out, stderr=err)
        launch = Launch(key, tenant, dry_run, who, time.time(), folder)
        self.launches[key] = launch
        await self._audit.record(who, launch.action, tenant, f"started (run {key})")
        launch.watcher = asyncio.create_task(self._watch(launch, child))
        return launch

    async def _watch(self, launch: Launch, child: asyncio.subprocess.Process) -> None:
        code = await child.wait()
        launch.exit_code, launch.ended = code, time.time()
        outcome = launch.outcome()
        said = f"status {outcome['status']}" if outcome else "no outcome"
        await self._audit.record(launch.who, f"{launch.action} ended", launch.tenant,
                                 f"run {launch.key}: exit {code}, {said}")  # fmt: skip

    async def aclose(self) -> None:
        """Stop watching, and remove the runs' files (a dry run's plan names people); a child
        still running finishes on its own, its run row and lease in the store."""
        for launch in self.launches.values():
            if launch.watcher is not None:
                launch.watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await launch.watcher
        shutil.rmtree(self._root, ignore_errors=True)


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None
