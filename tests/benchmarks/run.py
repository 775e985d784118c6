"""`make bench`: every benchmark in one run on this machine, each figure against a baseline
measured in the same run; writes tests/benchmarks/results.md and results.json.

    python -m tests.benchmarks.run [receiver] [pipeline] [sync] [replay] [resolver] [directory]
        [console]
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.benchmarks.common import Result, write_results
from tests.benchmarks.console_bench import bench_console
from tests.benchmarks.directory_bench import bench_directory
from tests.benchmarks.pipeline_bench import bench_pipeline
from tests.benchmarks.receiver_bench import bench_receiver
from tests.benchmarks.resolver_bench import bench_resolver
from tests.benchmarks.stack import Services, services
from tests.benchmarks.sync_bench import bench_full_sync, bench_replay

Bench = Callable[[Services, Path], Awaitable[list[Result]]]
BENCHES: dict[str, Bench] = {
    "receiver": bench_receiver,
    "pipeline": bench_pipeline,
    "sync": bench_full_sync,
    "replay": bench_replay,
    "resolver": bench_resolver,
    "directory": bench_directory,
    "console": bench_console,
}
_MEMORY_GOALS = {"receiver": 80.0, "worker": 150.0, "`orgstream sync`": 150.0}


async def run(chosen: list[str]) -> list[Result]:
    workdir = Path(".orgstream/bench")
    shutil.rmtree(workdir, ignore_errors=True)
    results: list[Result] = []
    async with services(workdir) as running:
        for name in chosen:
            started = time.perf_counter()
            print(f"bench {name} ...", file=sys.stderr, flush=True)
            results += await BENCHES[name](running, workdir)
            print(f"bench {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return _with_memory_baseline(results)


def _with_memory_baseline(results: list[Result]) -> list[Result]:
    """Every peak RSS against the bare endpoint's, and its goal."""
    bare = next((r.baseline for r in results if r.figure.startswith("receiver peak RSS")), 0.0)
    shown = []
    for result in results:
        if result.bench == "6 memory":
            process = result.figure.split(" peak RSS")[0]
            goal = _MEMORY_GOALS.get(process, 150.0)
            result = dataclasses.replace(
                result, baseline=bare, baseline_what="bare endpoint's peak RSS",
                goal=f"< {goal:.0f} MB", met=result.value < goal,
            )  # fmt: skip
        shown.append(result)
    return sorted(shown, key=lambda r: r.bench)


def main() -> None:
    chosen = sys.argv[1:] or list(BENCHES)
    started = time.perf_counter()
    results = asyncio.run(run(chosen))
    notes = [
        "Ratios are value / baseline. For throughput higher is better; for latency, time and "
        "memory lower is better.",
        "Load comes from a separate process (tests/benchmarks/loadgen.py): raw HTTP/1.1 "
        "keep-alive, closed loop for throughput, open loop (latency from when each request "
        "was due) for the fixed rate.",
    ]
    md, _ = write_results(results, notes, time.perf_counter() - started)
    print(md.read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
