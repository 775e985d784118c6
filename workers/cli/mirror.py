"""`orgstream mirror dump` and `orgstream mirror rebuild`: the mirror as a tree or JSON, and
the mirror made again from the directory feed alone."""

from __future__ import annotations

import argparse
import asyncio

import orjson

from schemas.config import Settings
from schemas.record import RecordError, decode_record
from workers.cli.options import Commands, config_option, settings_of
from workers.cli.printable import printable
from workers.directory.indexer import DirectoryIndexer
from workers.kafka.offsets import read_all
from workers.mirror.dump import as_json, as_tree
from workers.store.directory_index import open_directory_index
from workers.store.mirror import open_mirror


def register(commands: Commands) -> None:
    mirror = commands.add_parser("mirror", help="the directory the feed describes, as kept")
    actions = mirror.add_subparsers(title="mirror commands", required=True, metavar="ACTION")
    dump = actions.add_parser("dump", help="a tenant's mirrored directory, as a tree or JSON")
    config_option(dump)
    dump.add_argument("--tenant", required=True, help="the tenant to show")
    dump.add_argument("--json", action="store_true", help="one JSON object")
    dump.set_defaults(run=_dump)
    rebuild = actions.add_parser(
        "rebuild", help="empty the mirror and read the directory feed again from its start"
    )
    config_option(rebuild)
    rebuild.add_argument("--tenant", help="only this tenant (default: all)")
    rebuild.set_defaults(run=_rebuild)


def _dump(args: argparse.Namespace) -> int:
    settings = settings_of(args)

    async def read() -> str:
        mirror = open_mirror(settings.store.url)
        try:
            directory = await mirror.directory(args.tenant)
        finally:
            await mirror.aclose()
        if args.json:
            return orjson.dumps(as_json(args.tenant, directory)).decode()
        return "\n".join(printable(line) for line in as_tree(directory).splitlines())

    print(asyncio.run(read()))
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    applied, read = asyncio.run(rebuild(settings_of(args), args.tenant))
    print(f"{read} record(s) read from the feed, {applied} applied")
    return 0


async def rebuild(settings: Settings, tenant: str | None) -> tuple[int, int]:
    """Forget the mirror (of `tenant`), then apply every record of the feed from its start:
    (applied, read)."""
    mirror = open_mirror(settings.store.url)
    index = open_directory_index(settings.store.url)
    indexer = DirectoryIndexer(index, mirror, settings)
    applied = 0
    try:
        # First: what the live sink applies meanwhile stays. The directory server's ids are
        # made from the vendor's, so they come back the same.
        await mirror.forget(tenant)
        await index.forget(tenant)
        records = await read_all(settings.kafka.bootstrap_servers, settings.kafka.directory_topic)
        for record in records:
            try:
                decoded = decode_record(record.value)
            except RecordError:
                continue  # the mirror's sink dead-lettered it when it came
            if (tenant is None or decoded.tenant == tenant) and await mirror.apply(
                decoded, record.value
            ):
                applied += 1
                await indexer.apply(decoded)
    finally:
        await mirror.aclose()
        await index.aclose()
    return applied, len(records)
