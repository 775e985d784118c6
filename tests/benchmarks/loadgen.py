"""A load generator in its own process: raw HTTP/1.1 keep-alive requests, pre-built, sent
either in a closed loop (N connections, each sending as soon as the last answer came: the
server's throughput) or at a fixed rate (latency measured from when each request was due, so
queueing is counted). Prints one JSON object.

    python -m tests.benchmarks.loadgen HOST PORT REQUESTS.json closed 64 10
    python -m tests.benchmarks.loadgen HOST PORT REQUESTS.json open 500 10
"""

from __future__ import annotations

import asyncio
import base64
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

from tests.benchmarks.common import percentile


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked = 0, False
        for line in head.split(b"\r\n"):
            lowered = line.lower()
            if lowered.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
            elif lowered.startswith(b"transfer-encoding:") and b"chunked" in lowered:
                chunked = True
        if chunked:  # some servers (scim2-server) stream their bodies
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        elif length:
            await self.reader.readexactly(length)
        return status


async def connect(host: str, port: int) -> Connection:
    return Connection(*await asyncio.open_connection(host, port))


async def closed_loop(
    host: str, port: int, requests: list[bytes], connections: int, seconds: float
) -> dict[str, object]:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    next_index = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal next_index
        connection = await connect(host, port)
        while time.perf_counter() < deadline and next_index < len(requests):
            request = requests[next_index]
            next_index += 1
            started = time.perf_counter()
            statuses[await connection.exchange(request)] += 1
            latencies.append(time.perf_counter() - started)
        connection.writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return _summary(statuses, latencies, time.perf_counter() - started)


async def open_loop(
    host: str, port: int, requests: list[bytes], rate: float, seconds: float
) -> dict[str, object]:
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    idle: list[Connection] = []
    count = min(len(requests), int(rate * seconds))
    start = time.perf_counter() + 0.05

    async def one(index: int) -> None:
        due = start + index / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        connection = idle.pop() if idle else await connect(host, port)
        try:
            status = await connection.exchange(requests[index])
        except (asyncio.IncompleteReadError, ConnectionError):
            # The server closed a keep-alive connection that sat idle: a new one, once.
            connection = await connect(host, port)
            status = await connection.exchange(requests[index])
        statuses[status] += 1
        latencies.append(time.perf_counter() - due)
        idle.append(connection)

    await asyncio.gather(*(one(i) for i in range(count)))
    return _summary(statuses, latencies, time.perf_counter() - start)


def _summary(statuses: Counter[int], latencies: list[float], seconds: float) -> dict[str, object]:
    ok = sum(n for status, n in statuses.items() if 200 <= status < 300)
    return {
        "sent": sum(statuses.values()),
        "ok": ok,
        "statuses": {str(k): v for k, v in statuses.items()},
        "seconds": seconds,
        "rps": ok / seconds if seconds else 0.0,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def load_requests(path: Path) -> list[bytes]:
    return [base64.b64decode(r) for r in orjson.loads(path.read_bytes())]


def main(argv: list[str]) -> None:
    host, port, path, mode, amount, seconds = argv
    requests = load_requests(Path(path))
    if mode == "closed":
        result = closed_loop(host, int(port), requests, int(amount), float(seconds))
    else:
        result = open_loop(host, int(port), requests, float(amount), float(seconds))
    print(orjson.dumps(asyncio.run(result)).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
