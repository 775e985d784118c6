"""The mirror's stage (records from the feed into the mirror and the directory index), hosted
by whichever process `[feed] mirror_in` names: the worker, or `orgstream directory`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from schemas.config import Settings
from schemas.topics import dead_letter_topic
from workers.directory.indexer import DirectoryIndexer
from workers.kafka.batches import BatchConsumer
from workers.kafka.producer import Producer
from workers.mirror.sink import MirrorSink
from workers.store.directory_index import open_directory_index
from workers.store.mirror import Mirror, open_mirror


def mirror_consumer(
    settings: Settings, mirror: Mirror, indexer: DirectoryIndexer | None, producer: Producer
) -> BatchConsumer:
    kafka = settings.kafka
    sink = MirrorSink(
        mirror, producer, dead_letter_topic(kafka.directory_topic, kafka.mirror_group), indexer
    )
    return BatchConsumer(
        kafka.bootstrap_servers,
        kafka.directory_topic,
        kafka.mirror_group,
        sink.handle,
        kafka.session_timeout_ms,
    )


@contextlib.asynccontextmanager
async def own_mirror_stage(settings: Settings) -> AsyncIterator[BatchConsumer]:
    """The stage with a store and a producer of its own (`orgstream directory` hosting it)."""
    async with contextlib.AsyncExitStack() as opened:
        mirror = open_mirror(settings.store.url)
        opened.push_async_callback(mirror.aclose)
        index = open_directory_index(settings.store.url)
        opened.push_async_callback(index.aclose)
        producer = Producer(settings.kafka.bootstrap_servers, settings.kafka.topic)
        opened.push_async_callback(producer.stop)
        indexer = DirectoryIndexer(index, mirror, settings)
        yield mirror_consumer(settings, mirror, indexer, producer)
