"""Slow clients against the receiver as it is served: uvicorn with the receiver's limits."""

from __future__ import annotations

import asyncio
import time

import uvicorn

from receiver import create_app
from receiver.publisher import MemoryEventPublisher
from tests.receiver.wire import Tenant, contact_xml, wecom_post
from workers.cli.receiver_process import uvicorn_config
from workers.dev.devstack import free_port


async def test_a_body_sent_one_byte_at_a_time_is_cut_off_at_the_deadline() -> None:
    tenant = Tenant()
    port = free_port()
    settings = tenant.settings(port=port, body_timeout_seconds=1.0, metrics_port=0)
    app = create_app(settings, publisher=MemoryEventPublisher())
    server = uvicorn.Server(uvicorn_config(app, settings.receiver))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        query, body = wecom_post(tenant.keys, tenant.corp_id, contact_xml("delete_user"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST /callbacks/wecom/acme?{query} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        started = time.monotonic()
        answer = b""
        for byte in body[:20]:  # one byte every 0.3 s: the whole body would take minutes
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.3)
            if reader.at_eof() or time.monotonic() - started > 1.2:
                break
        # Reading to the end needs the server to close the connection: it does not wait for
        # the client to give up.
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        server.should_exit = True
        await serving
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in answer.lower()
