"""Topic names, the partition key and header names shared by producer and consumer."""

from __future__ import annotations

DEFAULT_TOPIC = "orgstream.contact-events"
DEFAULT_DLQ_TOPIC = "orgstream.contact-events.dlq"
DEFAULT_CONSUMER_GROUP = "orgstream-workers"

# Headers on dead-lettered records: why it failed and where it came from.
HEADER_ERROR = "orgstream-error"
HEADER_ORIGIN = "orgstream-origin"
HEADER_TRACEPARENT = "traceparent"
# On a record put back on the topic by `orgstream dlq redrive`: the DLQ record it came from.
HEADER_REDRIVEN_FROM = "orgstream-redriven-from"


def partition_key(tenant: str, entity: str, entity_id: str) -> bytes:
    """`tenant:entity:id`: every change of one entity lands on one partition, in order."""
    return f"{tenant}:{entity}:{entity_id}".encode()
