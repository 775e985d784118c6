"""Topic names, the message key and header names shared by producer and consumer.

The key is `tenant:entity:id` (for example `acme:user:zhangsan`): every change of one entity
lands on one partition, in order. It is built and parsed here and nowhere else; the store keeps
the `entity:id` part (`entity_key`) beside the tenant.
"""

from __future__ import annotations

import random

DEFAULT_TOPIC = "orgstream.contact-events"
DEFAULT_DLQ_TOPIC = "orgstream.contact-events.dlq"
DEFAULT_CONSUMER_GROUP = "orgstream-workers"
# Complete records, one per user or department, compacted: the latest state of every entity.
DEFAULT_DIRECTORY_TOPIC = "orgstream.directory"

# Headers on dead-lettered records: why it failed and where it came from.
HEADER_ERROR = "orgstream-error"
HEADER_ORIGIN = "orgstream-origin"
HEADER_TRACEPARENT = "traceparent"
# On a record put back on the topic by `orgstream dlq redrive`: the DLQ record it came from.
HEADER_REDRIVEN_FROM = "orgstream-redriven-from"


def dead_letter_topic(topic: str, group: str) -> str:
    """Where a stage's consumer group puts what it cannot handle: one topic per group, so a
    dead letter says which stage failed."""
    return f"{topic}.{group}.dlq"


def entity_key(entity: str, entity_id: str) -> str:
    """`entity:id`, the key of one entity within its tenant."""
    return f"{entity}:{entity_id}"


def tenant_entity_key(tenant: str, key: str) -> bytes:
    """The message key of an entity whose `entity_key` is `key`."""
    return f"{tenant}:{key}".encode()


def partition_key(tenant: str, entity: str, entity_id: str) -> bytes:
    """`tenant:entity:id`: every change of one entity lands on one partition, in order."""
    return tenant_entity_key(tenant, entity_key(entity, entity_id))


def parse_key(key: bytes) -> tuple[str, str, str]:
    """(tenant, entity, id) of a message key; ids may themselves contain colons."""
    tenant, entity, entity_id = key.decode("utf-8", "replace").split(":", 2)
    return tenant, entity, entity_id


def new_traceparent() -> str:
    """A fresh W3C trace context for events published without an incoming one. Trace ids need
    to be unique, not secret: no system randomness is spent on them."""
    return f"00-{random.getrandbits(128):032x}-{random.getrandbits(64):016x}-01"
