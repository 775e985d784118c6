"""One tenant's SCIM writes (POST, PUT, PATCH, DELETE on Users and Groups) made vendor writes
(docs/provisioning.md).

A PATCH or PUT is turned into the whole resource the IdP wants (workers/provision/patch.py),
mapped back to the vendor's terms and compared with what the vendor holds: only a difference
costs a vendor call, and what the vendor cannot hold (the IdP's externalId, its userName when
the userid is made of it, a path-style Group name) is kept beside the index and served back.
Group membership is a user's department list at the vendor, so a member added or removed is a
`user/update` of that user. Writes of one tenant are done one at a time: each is a read, a
comparison and a write of a user's whole department list.

Every write gets a row in the sync history: the vendor calls it made and how each went.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from schemas.config import TenantSettings
from workers.directory.ids import group_id, user_id
from workers.directory.reader import DirectoryReader
from workers.directory.responses import scim_error, scim_json
from workers.directory.writes import WriteRequest
from workers.errors import ApplyError
from workers.provision.departments import Done, GroupWrites
from workers.provision.errors import ProvisionError, from_vendor, invalid
from workers.provision.guard import HeldByGuard, ProvisioningGuard
from workers.provision.memberships import EVERY_TIME, Memberships
from workers.provision.patch import apply_patch
from workers.provision.recorded import RecordedWriter, note_write
from workers.provision.refresh import Refresher
from workers.provision.users import (
    active_of,
    current_write,
    idp_user_attributes,
    manager_id,
    user_write,
    userid_for,
)
from workers.scim.target import ENTERPRISE_USER
from workers.store.directory_index import DirectoryIndex
from workers.store.directory_rows import GROUP, USER
from workers.store.history import HistoryStore, Outcome
from workers.store.mirror import Mirror
from workers.vendors.writes import DirectoryWriter


class Provisioner:
    def __init__(
        self,
        tenant: TenantSettings,
        writer: DirectoryWriter,
        refresher: Refresher,
        reader: DirectoryReader,
        index: DirectoryIndex,
        mirror: Mirror,
        history: HistoryStore,
        served_user_name: Callable[[str], str],
        guard: ProvisioningGuard,
    ) -> None:
        assert tenant.provisioning is not None
        self._tenant = tenant
        self._rules = tenant.provisioning
        self._writer = writer
        self._refresh = refresher
        self._reader = reader
        self._index = index
        self._mirror = mirror
        self.mirror = mirror  # what the pull compares with
        self._history = history
        self._served_user_name = served_user_name
        self._guard = guard
        tree = Memberships(tenant.id, refresher, index, mirror)
        self._groups = GroupWrites(
            tenant.id, self._rules, tree, refresher, index, mirror, self._served
        )
        self._one_at_a_time = asyncio.Lock()

    async def aclose(self) -> None:
        await self._writer.aclose()
        await self._refresh.aclose()

    async def write(
        self, request: WriteRequest, departments: tuple[str, ...] | None = None
    ) -> Response:
        started = time.perf_counter()
        writer = RecordedWriter(self._writer)
        entity = "user" if request.endpoint == "Users" else "department"
        try:
            async with self._one_at_a_time:
                done = await self._route(request, writer, departments)
        except (ProvisionError, ApplyError, ValueError, TypeError, AttributeError, KeyError) as exc:
            # A body of an unexpected shape deep in a resource is the client's: a 400, never 500.
            error = exc if isinstance(exc, ProvisionError) else _as_scim_error(exc)
            what = request.scim_id or str(request.body.get("userName") or "")
            outcome: Outcome = "held" if isinstance(error, HeldByGuard) else "refused"
            await note_write(
                self._history,
                self._tenant,
                (entity, what, request.method),
                outcome,
                writer,
                started,
                error,
            )
            headers = {}
            if error.retry_after is not None:
                headers["Retry-After"] = str(max(1, round(error.retry_after)))
            return scim_error(error.status, error.detail, error.scim_type, headers)
        await note_write(
            self._history,
            self._tenant,
            (done.entity, done.entity_id, done.change),
            "applied",
            writer,
            started,
        )
        if done.resource is None:
            return Response(status_code=done.status)
        meta = done.resource.get("meta", {})
        headers = {"ETag": str(meta.get("version", "")), "Location": str(meta.get("location", ""))}
        return scim_json(done.resource, done.status, headers)

    async def converge_user(
        self, resource: dict[str, Any], departments: tuple[str, ...], base: str
    ) -> Response:
        """A pull's write of one user: created, or made equal to `resource` with exactly these
        departments; recorded like a push."""
        userid = userid_for(self._rules.userid, resource)
        stored = await self._index.by_source(self._tenant.id, USER, userid)
        method = "POST" if stored is None else "PUT"
        scim_id = None if stored is None else stored.scim_id
        request = WriteRequest(method, "Users", scim_id, resource, base)
        return await self.write(request, departments)

    async def _route(
        self,
        request: WriteRequest,
        writer: RecordedWriter,
        departments: tuple[str, ...] | None = None,
    ) -> Done:
        users = request.endpoint == "Users"
        if request.scim_id is None:
            if request.method != "POST":
                raise ProvisionError(405, f"{request.method} needs a resource id")
            if users:
                return await self._create_user(request, writer, departments or ())
            return await self._groups.create(request, writer)
        if request.method == "POST":
            raise ProvisionError(405, "POST creates: send it to the collection")
        kind = USER if users else GROUP
        stored = await self._index.get(self._tenant.id, kind, request.scim_id, EVERY_TIME)
        if stored is None:
            raise ProvisionError(404, f"{kind} {request.scim_id} not found")
        if request.method == "DELETE" and users and stored.deleted_at is not None:
            # Already gone at the vendor (DingTalk deletes whom the IdP deactivates).
            await self._index.remove(self._tenant.id, USER, stored.source_id)
            await self._index.keep_idp_attributes(self._tenant.id, USER, stored.source_id, {})
            return Done(204, "user", stored.source_id, "deleted")
        if request.method == "DELETE":
            kind_deleted = "user" if users else "department"
            await self._guard.admit(self._tenant.id, kind_deleted, f"deleting {stored.source_id}")
            if users:
                await writer.delete_user(stored.source_id)
                await self._refresh.user(stored.source_id)
                # Deleted by the IdP: gone for it (404), not a leaver kept for the retention,
                # and nothing of it is handed to whoever gets the userid next.
                await self._index.remove(self._tenant.id, USER, stored.source_id)
                await self._index.keep_idp_attributes(self._tenant.id, USER, stored.source_id, {})
            else:
                await writer.delete_department(stored.source_id)
                await self._refresh.department(stored.source_id)
                await self._index.keep_idp_attributes(self._tenant.id, GROUP, stored.source_id, {})
            await self._guard.record(self._tenant.id, kind_deleted)
            return Done(204, "user" if users else "department", stored.source_id, "deleted")
        found = await self._reader.get(self._tenant.id, kind, request.scim_id, request.base)
        if found is None:
            raise ProvisionError(404, f"{kind} {request.scim_id} not found")
        desired = (
            request.body if request.method == "PUT" else apply_patch(found.resource, request.body)
        )
        if users:
            return await self._update_user(stored.source_id, desired, request, writer, departments)
        return await self._groups.update(stored.source_id, found.resource, desired, request, writer)

    # ---- users ---------------------------------------------------------------------------

    async def _create_user(
        self, request: WriteRequest, writer: RecordedWriter, departments: tuple[str, ...] = ()
    ) -> Done:
        body = request.body
        userid = userid_for(self._rules.userid, body)
        existing = await self._index.by_source(self._tenant.id, USER, userid)
        if existing is not None and existing.deleted_at is None:
            raise ProvisionError(409, f"userName: the user {userid} exists", "uniqueness")
        leader = await self._leader(body)
        wanted = user_write(body, userid, departments, None, leader, writer.needs_mobile)
        if not wanted.active and not writer.can_disable:
            raise invalid("active", "this vendor keeps no inactive users: create the user active")
        await writer.create_user(wanted)
        await self._keep_user(userid, body)
        await self._refresh.user(userid)
        return Done(201, "user", userid, "created", await self._served(USER, userid, request))

    async def _update_user(
        self,
        userid: str,
        desired: dict[str, Any],
        request: WriteRequest,
        writer: RecordedWriter,
        departments: tuple[str, ...] | None = None,
    ) -> Done:
        """`departments`: the user's departments as a pull wants them; None keeps them (a
        push changes them through Groups)."""
        mirrored = await self._mirror.user(self._tenant.id, userid)
        leader = await self._leader(desired)
        if mirrored is None:
            if writer.can_disable or not active_of(desired.get("active", True)):
                raise ProvisionError(404, f"User {request.scim_id} is no longer at the vendor")
            # Reactivated where deactivating deleted (DingTalk): the user is made again.
            again = user_write(desired, userid, (), None, leader, writer.needs_mobile)
            await writer.create_user(again)
            await self._keep_user(userid, desired)
            await self._refresh.user(userid)
            return Done(
                200, "user", userid, "reactivated", await self._served(USER, userid, request)
            )
        current = current_write(mirrored)
        if departments is not None and leader is None and current.leaders:
            leader = current.leaders[0]  # a pull does not manage leaders
        wanted = user_write(
            desired, userid, current.departments if departments is None else departments,
            current.main_department, leader, writer.needs_mobile,
        )  # fmt: skip
        deactivating = current.active and not wanted.active
        if deactivating:
            await self._guard.admit(self._tenant.id, "user", f"deactivating {userid}")
        # What the IdP alone holds is kept once the vendor took the write, not before.
        if deactivating and not writer.can_disable:
            # No disabled state at this vendor: the user is deleted there, and served to the
            # IdP as inactive (a leaver) for the retention period.
            await writer.delete_user(userid)
            await self._keep_user(userid, desired)
            await self._refresh.user(userid)
            await self._guard.record(self._tenant.id, "user")
        elif wanted != current:
            await writer.update_user(wanted, current)
            await self._keep_user(userid, desired)
            await self._refresh.user(userid)
            if deactivating:
                await self._guard.record(self._tenant.id, "user")
        else:
            await self._keep_user(userid, desired)
            await self._refresh.reindex_user(userid)
        return Done(200, "user", userid, "updated", await self._served(USER, userid, request))

    async def _keep_user(self, userid: str, resource: dict[str, Any]) -> None:
        kept = idp_user_attributes(resource, self._served_user_name(userid))
        await self._index.keep_idp_attributes(self._tenant.id, USER, userid, kept)

    async def _leader(self, resource: dict[str, Any]) -> str | None:
        manager = manager_id(resource)
        if manager is None:
            return None
        stored = await self._index.get(self._tenant.id, USER, manager, EVERY_TIME)
        if stored is None:
            raise invalid(f"{ENTERPRISE_USER}:manager", f"no User {manager} here")
        return stored.source_id

    # ---- answers -------------------------------------------------------------------------

    async def _served(self, kind: str, source_id: str, request: WriteRequest) -> dict[str, Any]:
        scim_id = (
            user_id(self._tenant.id, source_id)
            if kind == USER
            else group_id(self._tenant.id, source_id)
        )
        found = await self._reader.get(self._tenant.id, kind, scim_id, request.base, idp_view=True)
        if found is None:  # written, but not readable: say so rather than invent it
            raise ProvisionError(
                502, f"the vendor took the write but {kind} {scim_id} cannot be read"
            )
        return found.resource


def _as_scim_error(error: Exception) -> ProvisionError:
    if isinstance(error, ApplyError):
        return from_vendor(error)
    return ProvisionError(
        400, f"the request cannot be read: {type(error).__name__}", "invalidValue"
    )
