"""A small HTTP forward proxy on loopback, the kind deployments put on DingTalk's bound export IP.

Forwards absolute-form requests (`GET http://host/path`, what clients send a proxy for http://
URLs) with a `Via` header added, and tunnels `CONNECT host:port` (https:// URLs). Every request
it handles is recorded, so a test can show which calls went through it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

VIA = "1.1 orgstream-test-proxy"
_HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "proxy-authorization", "te"}


@dataclass
class ForwardProxy:
    seen: list[str] = field(default_factory=list)  # "GET /topapi/v2/user/get", "CONNECT h:p"
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            method, target, _version = request_line.split(" ", 2)
            if method == "CONNECT":
                await self._tunnel(target, reader, writer)
            else:
                await self._forward(method, target, header_lines, reader, writer)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    async def _forward(
        self,
        method: str,
        target: str,
        header_lines: list[str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        url = urlsplit(target)
        self.seen.append(f"{method} {url.path}")
        headers = [h for h in header_lines if h.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP]
        length = next(
            (int(h.split(":", 1)[1]) for h in headers if h.lower().startswith("content-length:")),
            0,
        )
        body = await reader.readexactly(length) if length else b""
        path = url.path + (f"?{url.query}" if url.query else "")
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        request = [f"{method} {path} HTTP/1.1", *headers, f"Via: {VIA}", "Connection: close"]
        up_writer.write(("\r\n".join(request) + "\r\n\r\n").encode("latin-1") + body)
        await up_writer.drain()
        while chunk := await up_reader.read(65536):  # the origin closes after its answer
            writer.write(chunk)
            await writer.drain()
        up_writer.close()

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.seen.append(f"CONNECT {target}")
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            with contextlib.suppress(OSError):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
