"""Contracts shared by the receiver and the workers: the event, topics, configuration."""

from schemas.event import (
    SCHEMA_NAME,
    SCHEMA_VERSION,
    ContactEvent,
    SchemaError,
    decode,
    encode,
    make_event_id,
    utc_iso,
)
from schemas.topics import partition_key

__all__ = [
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "ContactEvent",
    "SchemaError",
    "decode",
    "encode",
    "make_event_id",
    "partition_key",
    "utc_iso",
]
