"""What a full sync with the feed on publishes: a record for each entity the walk found that
the mirror lacks or holds otherwise, nothing for what it holds already, and a request to
confirm each entity the mirror has that the walk did not find (never a deletion on its own)."""

from __future__ import annotations

from schemas.record import NO_PARENT
from workers.fullsync.feed_sync import feed_changes, mirror_snapshot
from workers.store.mirror import MirroredDirectory
from workers.vendors.records import RecordMaker
from workers.vendors.source import SourceDepartment, SourceUser
from workers.vendors.walk import Snapshot

VERSION = 1_796_000_000_000


def walked(*users: SourceUser) -> Snapshot:
    departments = {
        "1": SourceDepartment("1", "公司", NO_PARENT),
        "7": SourceDepartment("7", "研发", "1", 3),
    }
    return Snapshot(departments, {u.userid: u for u in users})


def mirrored_from(snapshot: Snapshot, maker: RecordMaker) -> MirroredDirectory:
    users = [maker.user(u, 1, []).user for u in snapshot.users.values()]
    departments = [maker.department(d, 1, []).department for d in snapshot.departments.values()]
    return MirroredDirectory(
        tuple(u for u in users if u), tuple(d for d in departments if d), (), ()
    )


ZHANG = SourceUser("zhang", "张伟", ("7",), "7", "工程师", "z@x.cn", "13800000000")
LI = SourceUser("li", "李娜", ("1", "7"), "1")


def test_a_walk_equal_to_the_mirror_publishes_nothing() -> None:
    maker = RecordMaker("acme", "wecom", "full_sync")
    snapshot = walked(ZHANG, LI)
    changes = feed_changes(snapshot, mirrored_from(snapshot, maker), maker, VERSION)
    assert changes.records == []
    assert changes.unconfirmed == []
    # And the mirror read back as a snapshot is the walk again (what the reconcile compares).
    assert mirror_snapshot(mirrored_from(snapshot, maker)) == snapshot


def test_new_and_changed_entities_are_records_and_missing_ones_are_to_be_confirmed() -> None:
    maker = RecordMaker("acme", "wecom", "full_sync")
    before = mirrored_from(walked(ZHANG, LI), maker)
    moved = SourceUser("li", "李娜", ("7",), "7")
    hire = SourceUser("wang", "王芳", ("7",), "7")
    now = Snapshot({"1": SourceDepartment("1", "公司", NO_PARENT)}, {"li": moved, "wang": hire})
    changes = feed_changes(now, before, maker, VERSION)
    assert sorted((r.kind, r.id) for r in changes.records) == [("user", "li"), ("user", "wang")]
    assert {r.version for r in changes.records} == {VERSION}
    assert {r.origin for r in changes.records} == {"full_sync"}
    assert not any(r.deleted for r in changes.records)  # only the resolver says "gone"
    assert changes.unconfirmed == [("user", "zhang"), ("department", "7")]


def test_fields_the_feed_keeps_out_do_not_count_as_changes() -> None:
    maker = RecordMaker("acme", "wecom", "full_sync", exclude_fields=("mobile",))
    snapshot = walked(ZHANG)
    changes = feed_changes(snapshot, mirrored_from(snapshot, maker), maker, VERSION)
    assert changes.records == []
    with_new_mobile = walked(SourceUser("zhang", "张伟", ("7",), "7", "工程师", "z@x.cn", "139"))
    assert (
        feed_changes(with_new_mobile, mirrored_from(snapshot, maker), maker, VERSION).records == []
    )
