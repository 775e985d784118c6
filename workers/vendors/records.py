"""Directory records made from what the vendor said, less what the feed's field policy keeps
out (`[feed] exclude_fields`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.event import ContactEvent, utc_iso
from schemas.record import (
    DepartmentState,
    DirectoryRecord,
    Membership,
    Origin,
    Resolved,
    UserState,
)
from schemas.types import Entity, Vendor
from workers.vendors.source import SourceDepartment, SourceUser


@dataclass(frozen=True)
class RecordMaker:
    """Makes one tenant's records; `version` is when the vendor was read, in milliseconds."""

    tenant: str
    vendor: Vendor
    origin: Origin
    exclude_fields: tuple[str, ...] = ()

    @property
    def _excluded(self) -> frozenset[str]:
        """`email` holds WeCom's business mail when the user has one (`SourceUser.email`), so
        keeping either address off the feed keeps both off."""
        excluded = set(self.exclude_fields)
        if excluded & {"email", "biz_mail"}:
            excluded |= {"email", "biz_mail"}
        return frozenset(excluded)

    def user(
        self, user: SourceUser, version: int, hints: Sequence[ContactEvent]
    ) -> DirectoryRecord:
        texts = {
            "title": user.position,
            "email": user.email,
            "mobile": user.mobile,
            "telephone": user.telephone,
            "biz_mail": user.biz_mail,
            "alias": user.alias,
        }
        state = UserState(
            userid=user.userid,
            name=user.name,
            active=user.active,
            departments=tuple(Membership(d) for d in user.departments),
            main_department=user.main_department,
            direct_leaders=user.direct_leaders,
            texts={k: v for k, v in texts.items() if v and k not in self._excluded},
            custom={} if "custom" in self._excluded else dict(user.custom),
        )
        return self._record("user", user.userid, version, hints, user=state)

    def department(
        self, department: SourceDepartment, version: int, hints: Sequence[ContactEvent]
    ) -> DirectoryRecord:
        state = DepartmentState(
            id=department.id,
            name=department.name,
            parent_id=department.parent_id,
            order=department.order,
        )
        return self._record("department", str(department.id), version, hints, department=state)

    def deletion(
        self,
        kind: Entity,
        entity_id: str,
        version: int,
        hints: Sequence[ContactEvent],
        renamed_to: str | None = None,
    ) -> DirectoryRecord:
        return self._record(kind, entity_id, version, hints, deleted=True, renamed_to=renamed_to)

    def _record(
        self,
        kind: Entity,
        entity_id: str,
        version: int,
        hints: Sequence[ContactEvent],
        user: UserState | None = None,
        department: DepartmentState | None = None,
        deleted: bool = False,
        renamed_to: str | None = None,
    ) -> DirectoryRecord:
        return DirectoryRecord(
            tenant=self.tenant,
            vendor=self.vendor,
            kind=kind,
            id=entity_id,
            version=version,
            origin=self.origin,
            resolved_at=utc_iso(version / 1000),
            user=user,
            department=department,
            deleted=deleted,
            renamed_to=renamed_to,
            resolved=tuple(Resolved(h.event_id, h.change, h.received_at) for h in hints),
        )
