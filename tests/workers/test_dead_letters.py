"""Dead letters as read off each stage's topic: what they are about, which can go back, and
what goes back for a directory record (a hint, a rename kept a rename)."""

from __future__ import annotations

import dataclasses

from aiokafka.structs import ConsumerRecord

from schemas.event import decode, encode
from schemas.record import encode_record
from schemas.topics import HEADER_ERROR, HEADER_ORIGIN
from tests.schemas.test_record import a_deletion, a_user
from workers.apply.records import event_of
from workers.kafka.dlq import _dead_letter, _hint_for

SINK_DLQ = "orgstream.directory.workers.dlq"


def consumed(topic: str, value: bytes, key: bytes | None = b"acme:user:zhangwei") -> ConsumerRecord:
    headers = [(HEADER_ERROR, b"SCIM 409 uniqueness"), (HEADER_ORIGIN, b"orgstream.directory/1/7")]
    return ConsumerRecord(topic, 2, 41, 1_767_225_600_000, 0, key, value, None, 0, len(value),
                          headers)  # fmt: skip


def test_an_event_on_the_workers_topic_goes_back_as_it_was() -> None:
    event = event_of(a_user())
    dead = _dead_letter(consumed("orgstream.contact-events.dlq", encode(event)), True, False)
    assert (dead.position, dead.change, dead.stuck) == ("2:41", "created", False)
    assert dead.summary()["topic"] == "orgstream.contact-events.dlq"


def test_a_record_on_the_sinks_topic_is_re_driven_as_a_hint_about_its_entity() -> None:
    dead = _dead_letter(consumed(SINK_DLQ, encode_record(a_user())), False, True)
    assert dead.position == f"{SINK_DLQ}:2:41"
    assert (dead.tenant, dead.entity, dead.entity_id, dead.change) == (
        "acme", "user", "zhangwei", "record")  # fmt: skip
    hint = decode(encode(_hint_for(dead)))  # a valid event on the wire
    assert (hint.entity, hint.entity_id, hint.change, hint.vendor) == (
        "user", "zhangwei", "updated", "wecom")  # fmt: skip
    assert _hint_for(dead).event_id != _hint_for(dataclasses.replace(dead, position="x")).event_id


def test_a_rename_is_re_driven_as_a_rename() -> None:
    dead = _dead_letter(consumed(SINK_DLQ, encode_record(a_deletion())), False, True)
    hint = _hint_for(dead)
    assert (hint.change, hint.attributes["new_userid"]) == ("renamed", "zhangwei2")


def test_an_unreadable_record_stays_for_a_person() -> None:
    dead = _dead_letter(consumed(SINK_DLQ, b"\x00not a record"), False, True)
    assert dead.stuck
    assert (dead.tenant, dead.entity_id) == ("acme", "zhangwei")  # from its key
    poison_event = _dead_letter(consumed("events.dlq", b"\x00"), True, False)
    assert not poison_event.stuck  # an event topic's poison goes back as before
