"""The Feishu contact API subset the worker calls (docs/vendors.md §3.5): the tenant access
token; a user and a department by id; for a full sync the departments under the root and the
users of each department, page by page.

Feishu names ids several ways: the tenant's `user_id_type` and `department_id_type` say which
ones the worker keys on, and every call asks for them. A user who has left (`is_resigned`), a
deleted department, and anything outside the app's contact scope read as gone: the scope is
what the company lets the app see, so what leaves it leaves the target too (guarded like any
deletion). The token travels as a bearer header, is cached and renewed early, and once more on
a token errcode; throttling (99991400, HTTP 429) backs off in `VendorHttp` for this tenant only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import quote

import httpx

from schemas.config import DEFAULT_API_QPS
from schemas.config.model import FeishuApp
from schemas.record import NO_PARENT
from workers.concurrency import gather_bounded
from workers.errors import VendorRejected, VendorUnavailable
from workers.vendors.custom_fields import feishu_custom_attrs
from workers.vendors.http import (
    WALK_CONCURRENCY,
    AccessToken,
    ErrorCodes,
    VendorHttp,
    call_with_token,
)
from workers.vendors.source import SourceDepartment, SourceUser

# Token codes renew the tenant token once (99991663 invalid or expired, 99991664 and 99991665
# invalid, 99991671 malformed); 40003 is the contact API's internal error.
CODES: Final = ErrorCodes(
    token=frozenset({99991663, 99991664, 99991665, 99991671}),
    throttle=frozenset({99991400}),
    busy=frozenset({-1, 1500, 40003}),
)
# Not there, or not in what the app may see (docs/vendors.md §3.5): both are gone to the app.
# (41012, "user id invalid", is not: an id of another type would read as everyone leaving.)
USER_GONE: Final = frozenset({41050})  # no user authority
DEPARTMENT_GONE: Final = frozenset({40004, 40015})  # no department authority; does not exist
ROOT_DEPARTMENT: Final = "0"
_PAGE_SIZE: Final = 50
_MAX_PAGES: Final = 10_000  # 500,000 items: more than any list Feishu holds
_API: Final = "/open-apis"
_ID: Final = re.compile(r"[A-Za-z0-9_.@+-]{1,128}")


class FeishuDirectory:
    def __init__(
        self,
        api_base: str,
        app: FeishuApp,
        app_secret: str,
        tenant_name: str,
        proxy: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        qps: float = DEFAULT_API_QPS,
    ) -> None:
        self._app = app
        self._app_secret = app_secret
        self._root_name = tenant_name
        self._http = VendorHttp("Feishu", api_base, proxy, timeout, qps, transport, "code", True)
        self._token = AccessToken(self._new_token)
        self._ids = {
            "user_id_type": app.user_id_type,
            "department_id_type": app.department_id_type,
        }

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_user(self, userid: str) -> SourceUser | None:
        data = await self._get(f"/contact/v3/users/{_segment(userid)}", {}, USER_GONE)
        return None if data is None else self._user(_object(data, "user"))

    async def get_department(self, department_id: str) -> SourceDepartment | None:
        if department_id == ROOT_DEPARTMENT:
            # The company itself: Feishu's root has no name of its own to read.
            return SourceDepartment(ROOT_DEPARTMENT, self._root_name, NO_PARENT)
        path = f"/contact/v3/departments/{_segment(department_id)}"
        data = await self._get(path, {}, DEPARTMENT_GONE)
        return None if data is None else self._department(_object(data, "department"))

    async def walk_departments(self) -> list[SourceDepartment]:
        """The root and every department below it (`fetch_child`), page by page."""
        path = f"/contact/v3/departments/{ROOT_DEPARTMENT}/children"
        # Gone here is an app that may not see the root: a walk of nothing would read as
        # everyone leaving. (docs/vendors.md §3.5: a full sync needs "all members" in scope.)
        listed = await self._pages(path, {"fetch_child": "true"}, DEPARTMENT_GONE, may_vanish=False)
        found = [d for d in (self._department(item) for item in listed) if d is not None]
        return [SourceDepartment(ROOT_DEPARTMENT, self._root_name, NO_PARENT), *found]

    async def walk_user_ids(self, departments: Iterable[str]) -> set[str]:
        return set((await self.walk_users(departments)).keys())

    async def walk_users(self, departments: Iterable[str]) -> dict[str, SourceUser]:
        """Every user, from each department's direct members. Feishu lists them in full, so
        the walk reads no user twice."""

        async def members(department_id: str) -> list[dict[str, Any]]:
            params = {"department_id": department_id}
            path = "/contact/v3/users/find_by_department"
            return await self._pages(path, params, DEPARTMENT_GONE, may_vanish=True)

        listed = await gather_bounded(list(departments), members, WALK_CONCURRENCY)
        users = (self._user(item) for batch in listed for item in batch)
        return {u.userid: u for u in users if u is not None}

    def _user(self, obj: Mapping[str, Any]) -> SourceUser | None:
        """The user, or None for a leaver. Without the configured id (the app lost the
        permission that shows it) the answer is refused: it says nothing of who left."""
        userid = self._id_of(obj, self._app.user_id_type)
        status = _status(obj)
        if status.get("is_resigned"):
            return None
        departments = tuple(str(d) for d in obj.get("department_ids") or [] if d)
        primary = [
            str(o.get("department_id"))
            for o in obj.get("orders") or []
            if isinstance(o, dict) and o.get("is_primary_dept") and o.get("department_id")
        ]
        leader = obj.get("leader_user_id")
        return SourceUser(
            userid=userid,
            name=str(obj.get("name") or userid),
            departments=departments,
            main_department=next((d for d in primary if d in departments), None)
            or (departments[0] if departments else None),
            position=str(obj.get("job_title") or ""),
            email=str(obj.get("enterprise_email") or obj.get("email") or ""),
            mobile=str(obj.get("mobile") or ""),
            # A frozen account is disabled; one not yet activated is an employee all the same.
            active=not status.get("is_frozen"),
            direct_leaders=(leader,) if isinstance(leader, str) and leader else (),
            biz_mail=str(obj.get("enterprise_email") or ""),
            custom=feishu_custom_attrs(obj),
        )

    def _department(self, obj: Mapping[str, Any]) -> SourceDepartment | None:
        department_id = self._id_of(obj, self._app.department_id_type)
        if _status(obj).get("is_deleted"):
            return None
        order = obj.get("order")
        return SourceDepartment(
            id=department_id,
            name=str(obj.get("name") or department_id),
            parent_id=str(obj.get("parent_department_id") or ROOT_DEPARTMENT),
            order=int(order) if isinstance(order, int | str) and str(order).isdigit() else 0,
        )

    async def _pages(
        self, path: str, params: Mapping[str, str], gone: frozenset[int], may_vanish: bool
    ) -> list[dict[str, Any]]:
        """Every item of a paged list. A list that is gone before its first page lists nothing
        where it `may_vanish` (a department deleted since it was listed); gone after it, or
        a page token seen before, is a list that cannot be read whole: `VendorRejected`."""
        items: list[dict[str, Any]] = []
        token, seen = "", set()
        for _ in range(_MAX_PAGES):
            page = {**params, "page_size": str(_PAGE_SIZE)}
            if token:
                page["page_token"] = token
            data = await self._get(path, page, gone)
            if data is None:
                if may_vanish and not token:
                    return []
                raise VendorRejected(0, f"Feishu {path}: the list cannot be read (out of scope)")
            items.extend(i for i in data.get("items") or [] if isinstance(i, dict))
            token = str(data.get("page_token") or "")
            if not data.get("has_more") or not token:
                return items
            if token in seen:
                raise VendorUnavailable(f"Feishu {path}: page_token {token!r} came round again")
            seen.add(token)
        raise VendorUnavailable(f"Feishu {path}: more than {_MAX_PAGES} pages")

    def _id_of(self, obj: Mapping[str, Any], id_type: str) -> str:
        value = obj.get(id_type)
        if not isinstance(value, str) or not value:
            raise VendorRejected(
                0, f"Feishu answered without {id_type}: the app needs the permission that shows it"
            )
        return value

    async def _get(
        self, path: str, params: Mapping[str, str], gone: frozenset[int]
    ) -> dict[str, Any] | None:
        """An authenticated GET (the tenant token as a bearer): its `data`, or None when Feishu
        answers one of `gone`."""
        answer = await call_with_token(
            self._http,
            self._token,
            CODES,
            "GET",
            _API + path,
            {**params, **self._ids},
            None,
            gone,
            bearer=True,
        )
        if answer is None:
            return None
        found = answer.get("data")
        return found if isinstance(found, dict) else {}

    async def _new_token(self) -> tuple[str, float]:
        body = {"app_id": self._app.app_id, "app_secret": self._app_secret}
        path = f"{_API}/auth/v3/tenant_access_token/internal"
        data = await self._http.call("POST", path, {}, body, CODES.throttle)
        code = self._http.errcode(data)
        if code in CODES.busy:
            raise VendorUnavailable(f"Feishu tenant_access_token code {code}")
        if code:
            raise VendorRejected(code, str(data.get("msg", "")))
        return str(data["tenant_access_token"]), float(data.get("expire", 7200))


def _segment(value: str) -> str:
    """An id as one path segment. Feishu's ids are letters, digits and a few marks; anything
    else (a `/`, a `..`) could address another resource, and is refused, not read as gone."""
    if not _ID.fullmatch(value) or value in (".", ".."):
        raise VendorRejected(0, f"{value!r} is not a Feishu id")
    return quote(value, safe="")


def _object(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """`data.<name>` of a successful answer; an answer without it is no answer."""
    found = data.get(name)
    if not isinstance(found, dict):
        raise VendorUnavailable(f"Feishu answered code 0 without data.{name}")
    return found


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}
