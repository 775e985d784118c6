"""The resolver in process: one vendor read per touched entity per batch, deletions only on
the vendor's word, the departments a record needs described before it, the field policy."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from schemas.config import ConfigError, Settings, parse_settings
from schemas.event import ContactEvent, encode, utc_iso
from schemas.record import NO_PARENT, DirectoryRecord, decode_record, encode_record
from workers.kafka.producer import Headers
from workers.resolve.plan import plan
from workers.resolve.resolver import Resolver
from workers.store.mirror import Mirror, open_mirror
from workers.vendors.records import RecordMaker
from workers.vendors.source import SourceDepartment, SourceDirectory, SourceUser, number_of

TOPIC = "orgstream.directory"


def hint(entity: str, entity_id: str, change: str = "updated", **attributes: Any) -> ContactEvent:
    now = utc_iso(time.time())
    return ContactEvent(
        event_id=f"{entity}-{entity_id}-{change}-{time.perf_counter_ns()}",
        tenant="acme",
        vendor="wecom",
        entity=entity,  # type: ignore[arg-type]
        entity_id=entity_id,
        change=change,  # type: ignore[arg-type]
        occurred_at=now,
        received_at=now,
        raw="",
        attributes={"userid" if entity == "user" else "id": entity_id, **attributes},
    )


@dataclass
class Vendor:
    """A directory that counts how often each entity is read."""

    users: dict[str, SourceUser] = field(default_factory=dict)
    departments: dict[str, SourceDepartment] = field(default_factory=dict)
    reads: Counter[str] = field(default_factory=Counter)

    async def get_user(self, userid: str) -> SourceUser | None:
        self.reads[f"user:{userid}"] += 1
        return self.users.get(userid)

    async def get_department(self, department_id: str) -> SourceDepartment | None:
        number_of(department_id)  # a WeCom id, as the real client checks
        self.reads[f"department:{department_id}"] += 1
        return self.departments.get(department_id)

    async def aclose(self) -> None:
        return None

    def source_for(self, tenant_id: str) -> SourceDirectory | None:
        return self if tenant_id == "acme" else None


@dataclass
class Feed:
    records: list[DirectoryRecord] = field(default_factory=list)
    dead: list[tuple[str, bytes]] = field(default_factory=list)

    async def send(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        self.dead.append((topic, value))

    async def send_all(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        assert topic == TOPIC
        self.records += [decode_record(value) for _, value in records]


@dataclass
class Record:
    """What the resolver reads off the hint topic."""

    value: bytes
    key: bytes | None
    topic: str = "orgstream.contact-events"
    partition: int = 0
    offset: int = 0


def settings(**feed: Any) -> Settings:
    tenant = {"id": "acme", "vendor": "wecom", "corp_id": "ww1", "callback_token": "t",
              "encoding_aes_key": "k" * 43, "api_secret": "s"}  # fmt: skip
    return parse_settings({"tenants": [tenant], "feed": feed}, environ={})


@pytest.fixture
async def mirror(tmp_path: Path) -> AsyncIterator[Mirror]:
    store = open_mirror(f"sqlite:///{tmp_path / 'mirror.db'}")
    yield store
    await store.aclose()


def company() -> Vendor:
    vendor = Vendor()
    vendor.departments = {
        "1": SourceDepartment("1", "总部", NO_PARENT),
        "2": SourceDepartment("2", "研发", "1"),
        "3": SourceDepartment("3", "平台", "2"),
    }
    for i in range(5):
        vendor.users[f"u{i}"] = SourceUser(f"u{i}", f"用户{i}", ("3",), "3", position="工程师",
                                           mobile="13800000000")  # fmt: skip
    return vendor


async def resolve(vendor: Vendor, mirror: Mirror, hints: list[ContactEvent], **feed: Any) -> Feed:
    feed_out = Feed()
    resolver = Resolver(settings(**feed), vendor, mirror, feed_out, "workers-resolver")
    await resolver.handle([Record(encode(h), h.key) for h in hints])
    return feed_out


async def test_fifty_hints_for_five_users_are_five_reads(mirror: Mirror) -> None:
    vendor = company()
    hints = [hint("user", f"u{i % 5}", position=f"p{i}") for i in range(50)]
    feed = await resolve(vendor, mirror, hints)
    assert sum(n for what, n in vendor.reads.items() if what.startswith("user:")) == 5
    users = [r for r in feed.records if r.kind == "user"]
    assert sorted(r.id for r in users) == [f"u{i}" for i in range(5)]
    assert all(len(r.resolved) == 10 for r in users)  # each names the hints it answers


async def test_a_deleted_hint_deletes_only_on_the_vendors_word(mirror: Mirror) -> None:
    vendor = company()
    feed = await resolve(
        vendor, mirror, [hint("user", "u1", "deleted"), hint("user", "gone", "deleted")]
    )
    by_id = {r.id: r for r in feed.records if r.kind == "user"}
    assert not by_id["u1"].deleted
    assert by_id["u1"].user is not None
    assert by_id["gone"].deleted
    assert by_id["gone"].user is None


async def test_the_departments_a_user_needs_come_first_root_down_and_once(
    mirror: Mirror,
) -> None:
    vendor = company()
    feed = await resolve(vendor, mirror, [hint("user", "u1"), hint("user", "u2")])
    assert [(r.kind, r.id) for r in feed.records] == [
        ("department", "1"), ("department", "2"), ("department", "3"),
        ("user", "u1"), ("user", "u2"),
    ]  # fmt: skip
    assert vendor.reads["department:3"] == 1


async def test_a_department_the_mirror_has_is_not_read_again(mirror: Mirror) -> None:
    vendor = company()
    for record in (await resolve(vendor, mirror, [hint("department", "3")])).records:
        await mirror.apply(record, encode_record(record))
    vendor.reads.clear()
    fresh = Vendor(users=vendor.users, departments=vendor.departments)
    await resolve(fresh, mirror, [hint("user", "u4")])
    assert [k for k in fresh.reads if k.startswith("department")] == []


async def test_a_userid_change_moves_the_person_and_confirms_the_old_id_gone(
    mirror: Mirror,
) -> None:
    vendor = company()
    vendor.users["u9"] = dataclasses.replace(vendor.users.pop("u1"), userid="u9")
    feed = await resolve(vendor, mirror, [hint("user", "u1", "renamed", new_userid="u9")])
    by_id = {r.id: r for r in feed.records if r.kind == "user"}
    assert by_id["u1"].deleted
    assert by_id["u1"].renamed_to == "u9"
    assert by_id["u9"].user is not None


async def test_a_full_field_create_is_not_read(mirror: Mirror) -> None:
    vendor = company()
    created = hint("user", "new", "created", name="新人", departments=[3], status=1,
                   mobile="13900000000", position="实习生")  # fmt: skip
    feed = await resolve(vendor, mirror, [created])
    assert "user:new" not in vendor.reads
    (record,) = [r for r in feed.records if r.kind == "user"]
    assert record.user is not None
    assert record.user.texts == {"title": "实习生", "mobile": "13900000000"}


def test_the_field_policy_keeps_fields_off_the_feed() -> None:
    maker = RecordMaker("acme", "wecom", "callback", exclude_fields=("mobile", "telephone"))
    user = SourceUser("u1", "用户", ("3",), position="工程师", mobile="1", telephone="2")
    record = maker.user(user, 1, [])
    assert record.user is not None
    assert record.user.texts == {"title": "工程师"}


def test_keeping_the_business_mail_off_the_feed_keeps_the_address_that_holds_it_off() -> None:
    """WeCom gives one address, the business mail when there is one: it travels as `email`."""
    user = SourceUser("u1", "用户", ("3",), email="corp@x.cn", mobile="1")
    for excluded in ("biz_mail", "email"):
        record = RecordMaker("acme", "wecom", "callback", exclude_fields=(excluded,)).user(
            user, 1, []
        )
        assert record.user is not None
        assert record.user.texts == {"mobile": "1"}


def test_the_config_takes_any_user_field_off_the_feed_and_refuses_unknown_ones() -> None:
    """A mapped field kept off the feed is left to the target (test_apply.py shows it)."""
    assert settings(exclude_fields=["mobile"]).feed.exclude_fields == ("mobile",)
    assert settings(exclude_fields=["custom", "extra"]).feed.exclude_fields == ("custom", "extra")
    with pytest.raises(ConfigError, match=r"feed\.exclude_fields"):
        settings(exclude_fields=["password"])


async def test_a_hint_that_cannot_be_resolved_is_dead_lettered_not_retried(
    mirror: Mirror,
) -> None:
    """A malformed full-field create is read at the vendor instead; a department id that is
    no number goes to the dead letters; neither stops the batch."""
    vendor = company()
    malformed = hint("user", "u1", "created", name="x", departments=[""], status=1)
    not_a_number = hint("department", "sales")
    feed = await resolve(vendor, mirror, [malformed, not_a_number, hint("user", "u2")])
    assert vendor.reads["user:u1"] == 1
    assert sorted(r.id for r in feed.records if r.kind == "user") == ["u1", "u2"]
    assert len(feed.dead) == 1


async def test_an_unknown_tenant_or_an_unreadable_hint_is_dead_lettered(
    mirror: Mirror,
) -> None:
    vendor = company()
    feed = Feed()
    resolver = Resolver(settings(), vendor, mirror, feed, "workers-resolver")
    other = dataclasses.replace(hint("user", "x"), tenant="nobody")
    await resolver.handle([Record(b"not json", b"k"), Record(encode(other), other.key)])
    assert [topic for topic, _ in feed.dead] == [
        "orgstream.contact-events.workers-resolver.dlq"
    ] * 2
    assert feed.records == []


def test_the_plan_is_one_piece_of_work_per_entity_in_first_seen_order() -> None:
    works = plan([hint("user", "b"), hint("user", "a"), hint("user", "b"), hint("department", "3")])
    assert [(w.kind, w.id, len(w.hints)) for w in works] == [
        ("user", "b", 2), ("user", "a", 1), ("department", "3", 1),
    ]  # fmt: skip
