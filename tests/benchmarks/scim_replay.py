"""The SCIM target's raw capacity: the very requests orgstream made (recorded by the proxy in
front of the target), sent again to a fresh target by a bare loop at a chosen concurrency,
with the ids the first target gave swapped for the ones the fresh target gives."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence

import httpx
import orjson

from tests.faults import Exchange
from workers.dev.harness import SCIM_TOKEN

_ID = re.compile(r"[0-9a-f]{32}")


async def replay(
    exchanges: Sequence[Exchange], base_url: str, concurrency: int, prefix: str
) -> float:
    """Send `exchanges` (paths under `prefix`, the recorded target's path) to `base_url` in
    their order, `concurrency` at a time; a request naming an id waits for the POST that made
    it. Seconds taken."""
    made: dict[str, asyncio.Future[str]] = {}
    loop = asyncio.get_running_loop()
    for exchange in exchanges:
        if exchange.method == "POST" and exchange.status == 201:
            made[str(orjson.loads(exchange.answer)["id"])] = loop.create_future()
    gate = asyncio.Semaphore(concurrency)
    headers = {"Authorization": f"Bearer {SCIM_TOKEN}", "Content-Type": "application/scim+json"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client:

        async def one(exchange: Exchange) -> None:
            text = exchange.path.removeprefix(prefix) + "?" + exchange.query + "\0"
            text += exchange.body.decode()
            for old in set(_ID.findall(text)):
                if old in made:
                    text = text.replace(old, await made[old])
            target, _, body = text.partition("\0")
            path, _, query = target.partition("?")
            async with gate:
                answer = await client.request(
                    exchange.method, path + (f"?{query}" if query else ""),
                    content=body.encode() or None,
                )  # fmt: skip
            if exchange.method == "POST" and exchange.status == 201:
                made[str(orjson.loads(exchange.answer)["id"])].set_result(answer.json()["id"])

        started = time.perf_counter()
        await asyncio.gather(*(one(e) for e in exchanges))
        return time.perf_counter() - started
