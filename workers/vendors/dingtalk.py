"""The DingTalk API subset the worker calls (docs/vendors.md §2.6): gettoken,
topapi/v2/user/get, topapi/v2/department/get; for a full sync topapi/v2/department/listsub and
topapi/user/listid; and call_back/get_call_back_failed_result for the callbacks DingTalk could
not deliver (docs/vendors.md §2.3).

DingTalk events carry ids only, so every user and department event is resolved here. The token
is cached per app and renewed early; token errors renew it once and retry (as dingtalk-sdk
does); throttling (90002, 90018, 90019, HTTP 429) backs off in `VendorHttp` without holding
back other tenants. Every call goes through the tenant's forward proxy when one is configured:
DingTalk binds the company's API calls to one export IP.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import httpx

from schemas.config import DEFAULT_API_QPS
from workers.concurrency import gather_bounded
from workers.errors import VendorRejected, VendorUnavailable
from workers.vendors.custom_fields import dingtalk_extension
from workers.vendors.http import (
    WALK_CONCURRENCY,
    AccessToken,
    ErrorCodes,
    VendorHttp,
    call_with_token,
)
from workers.vendors.source import (
    SourceDepartment,
    SourceUser,
    number_of,
    numeric_id,
    numeric_parent,
)

CODES: Final = ErrorCodes(
    token=frozenset({33001, 40001, 40014, 42001}),
    throttle=frozenset({90002, 90018, 90019}),
    busy=frozenset({-1}),
)
USER_NOT_FOUND: Final = 60121
DEPARTMENT_NOT_FOUND: Final = 60003
ROOT_DEPARTMENT: Final = "1"


class DingTalkDirectory:
    def __init__(
        self,
        api_base: str,
        app_key: str,
        app_secret: str,
        proxy: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        qps: float = DEFAULT_API_QPS,
    ) -> None:
        self._app_key = app_key
        self._app_secret = app_secret
        self._http = VendorHttp("DingTalk", api_base, proxy, timeout, qps, transport)
        self._token = AccessToken(self._new_token)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_user(self, userid: str) -> SourceUser | None:
        body = {"userid": userid, "language": "zh_CN"}
        result = await self._call("/topapi/v2/user/get", body, USER_NOT_FOUND)
        if result is None:
            return None
        departments = tuple(numeric_id(d) for d in result.get("dept_id_list", []))
        manager = result.get("manager_userid")
        return SourceUser(
            userid=str(result["userid"]),
            name=str(result.get("name") or result["userid"]),
            departments=departments,
            # v2 user/get names no main department; DingTalk lists it first.
            main_department=departments[0] if departments else None,
            position=str(result.get("title") or ""),
            email=str(result.get("org_email") or result.get("email") or ""),
            mobile=str(result.get("mobile") or ""),
            telephone=str(result.get("telephone") or ""),
            # `active` at DingTalk means "has logged in once", not employment: everyone the
            # directory still lists is an employee (leavers are removed and cannot be read).
            active=True,
            direct_leaders=(str(manager),) if manager else (),
            biz_mail=str(result.get("org_email") or ""),
            custom=dingtalk_extension(result),
        )

    async def get_department(self, department_id: str) -> SourceDepartment | None:
        body = {"dept_id": number_of(department_id), "language": "zh_CN"}
        result = await self._call("/topapi/v2/department/get", body, DEPARTMENT_NOT_FOUND)
        if result is None:
            return None
        return SourceDepartment(
            id=numeric_id(result["dept_id"]),
            name=str(result["name"]),
            parent_id=numeric_parent(result.get("parent_id")),  # the root (id 1) has none
            order=int(result.get("order") or 0),
        )

    async def walk_departments(self) -> list[SourceDepartment]:
        """The root and everything under it, one level at a time: department/listsub gives a
        department's direct children with their names."""
        root = await self.get_department(ROOT_DEPARTMENT)
        if root is None:
            raise VendorRejected(DEPARTMENT_NOT_FOUND, "the root department cannot be read")
        found, level = [root], [root.id]
        while level:
            children = [
                d
                for batch in await gather_bounded(level, self._children, WALK_CONCURRENCY)
                for d in batch
            ]
            found.extend(children)
            level = [d.id for d in children]
        return found

    async def walk_user_ids(self, departments: Iterable[str]) -> set[str]:
        """Every userid, from each department's member list (user/listid)."""
        listed = await gather_bounded(departments, self._member_ids, WALK_CONCURRENCY)
        return {userid for members in listed for userid in members}

    async def failed_callbacks(self) -> tuple[list[dict[str, Any]], bool]:
        """Callbacks DingTalk failed to deliver, at most 200 per call, and whether more wait.
        DingTalk forgets what it returns here: the caller must not lose them."""
        data = await call_with_token(
            self._http,
            self._token,
            CODES,
            "GET",
            "/call_back/get_call_back_failed_result",
            {},
            None,
            0,
        )
        failed = (data or {}).get("failed_list") or []
        return [f for f in failed if isinstance(f, dict)], bool((data or {}).get("has_more"))

    async def _children(self, parent_id: str) -> list[SourceDepartment]:
        body = {"dept_id": number_of(parent_id), "language": "zh_CN"}
        listed = await self._result("/topapi/v2/department/listsub", body, DEPARTMENT_NOT_FOUND)
        return [
            SourceDepartment(
                id=numeric_id(d["dept_id"]),
                name=str(d["name"]),
                parent_id=numeric_parent(d.get("parent_id") or parent_id),
                order=int(d.get("order") or 0),
            )
            for d in listed or []  # None: deleted since its parent was listed
        ]

    async def _member_ids(self, department_id: str) -> list[str]:
        body = {"dept_id": number_of(department_id)}
        listed = await self._result("/topapi/user/listid", body, DEPARTMENT_NOT_FOUND)
        return [str(u) for u in (listed or {}).get("userid_list", [])]

    async def _call(self, path: str, body: dict[str, Any], not_found: int) -> dict[str, Any] | None:
        """POST with a token; the `result` object, or `None` when DingTalk answers `not_found`."""
        result: dict[str, Any] | None = await self._result(path, body, not_found)
        return result

    async def _result(self, path: str, body: dict[str, Any], not_found: int) -> Any:
        """POST with a token; the `result` (an object or a list), or `None` on `not_found`."""
        data = await call_with_token(
            self._http, self._token, CODES, "POST", path, {}, body, not_found
        )
        return None if data is None else data["result"]

    async def _new_token(self) -> tuple[str, float]:
        return await dingtalk_token(self._http, self._app_key, self._app_secret)


async def dingtalk_token(http: VendorHttp, app_key: str, app_secret: str) -> tuple[str, float]:
    """The app's token; the same app reads and (with the permission) writes."""
    params = {"appkey": app_key, "appsecret": app_secret}
    data = await http.call("GET", "/gettoken", params, throttle_codes=CODES.throttle)
    errcode = int(data.get("errcode", 0))
    if errcode in CODES.busy:
        raise VendorUnavailable(f"DingTalk gettoken errcode {errcode}")
    if errcode:
        raise VendorRejected(errcode, str(data.get("errmsg", "")))
    return str(data["access_token"]), float(data.get("expires_in", 7200))
