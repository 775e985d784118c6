"""The charts page: lag per consumer group and outcomes per minute over the last hours, drawn
on the server as SVG (no script, so nothing for the content policy to allow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from schemas.event import utc_iso
from workers.console.page import Console
from workers.console.samples import Sample
from workers.console.sessions import Session

WIDTH: Final = 720
HEIGHT: Final = 160


@dataclass(frozen=True)
class Chart:
    title: str
    points: str  # an SVG polyline's points, "x,y x,y …"
    top: float  # the value at the top edge
    last: float
    first_at: str
    last_at: str


def line(title: str, samples: list[Sample], values: list[float]) -> Chart | None:
    if len(values) < 2:
        return None
    top = max(max(values), 1.0)
    start, span = samples[0].at, max(samples[-1].at - samples[0].at, 1e-9)
    points = " ".join(
        f"{(s.at - start) / span * WIDTH:.1f},{HEIGHT - v / top * HEIGHT:.1f}"
        for s, v in zip(samples, values, strict=True)
    )
    return Chart(title, points, top, values[-1], utc_iso(samples[0].at)[:19].replace("T", " "),
                 utc_iso(samples[-1].at)[:19].replace("T", " "))  # fmt: skip


def charts_of(samples: list[Sample]) -> list[Chart]:
    measured = [s for s in samples if s.lag is not None]
    groups = sorted({g for s in measured for g in s.lag or {}})
    drawn = [
        line(
            f"Lag of {group} (events)",
            measured,
            [float((s.lag or {}).get(group, 0)) for s in measured],
        )
        for group in groups
    ]
    drawn.append(line("Outcomes recorded per minute", samples, [s.per_minute for s in samples]))
    return [c for c in drawn if c is not None]


async def charts_page(request: Request, console: Console, session: Session) -> Response:
    samples = list(console.sampler.samples) if console.sampler else []
    every = console.sampler.every if console.sampler else 0
    return console.render(request, "charts.html", session, charts=charts_of(samples),
                          every=every, taken=len(samples), width=WIDTH, height=HEIGHT)  # fmt: skip
