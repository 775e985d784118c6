"""What every benchmark shares: the machine, peak memory of a process, percentiles, and the
result rows written to results.md and results.json."""

from __future__ import annotations

import math
import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Result:
    """One figure, the baseline it is measured against in the same run, and the goal."""

    bench: str
    figure: str
    value: float
    unit: str
    baseline: float
    baseline_what: str
    goal: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": round(self.ratio, 3)}


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least `q` of the values at or below it (an
    infinite value, "never happened in the run", stays infinite)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def write_results(results: list[Result], notes: list[str], seconds: float) -> tuple[Path, Path]:
    info = machine()
    json_path, md_path = HERE / "results.json", HERE / "results.md"
    document = {
        "machine": info,
        "seconds": round(seconds, 1),
        "results": [r.to_dict() for r in results],
        "notes": notes,
    }
    json_path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    lines = [
        "# orgstream benchmarks",
        "",
        f"Machine: {info['cores']} cores, Python {info['python']}, {info['platform']}. "
        f"`make bench` took {seconds / 60:.1f} min.",
        "",
        "| bench | figure | value | baseline (same run) | ratio | goal | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(
            f"| {r.bench} | {r.figure} | {_num(r.value)} {r.unit} | {_num(r.baseline)} {r.unit}"
            f" ({r.baseline_what}) | {r.ratio:.2f} | {r.goal} | {met} |"
        )
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return md_path, json_path


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
