"""The WeCom API subset the worker calls: gettoken, user/get, department/get, and for a full
sync the calls new deployments may still make (docs/vendors.md §1.7):
department/simplelist and user/list_id.

The token is cached and renewed early; the token errors renew it once and retry; throttling is
backed off in `VendorHttp`, other busy errors become `VendorUnavailable` so the event is retried
later. Every call goes through the tenant's HTTPS forward proxy when one is configured.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import httpx

from schemas.config import DEFAULT_API_QPS
from workers.concurrency import gather_bounded
from workers.errors import VendorRejected, VendorUnavailable
from workers.vendors.custom_fields import wecom_extattr
from workers.vendors.http import (
    WALK_CONCURRENCY,
    AccessToken,
    ErrorCodes,
    VendorHttp,
    call_with_token,
)
from workers.vendors.source import (
    ACTIVE_STATUSES,
    SourceDepartment,
    SourceUser,
    number_of,
    numeric_id,
    numeric_parent,
)

CODES: Final = ErrorCodes(
    token=frozenset({40001, 40014, 42001}),
    throttle=frozenset({45009, 45033}),  # API frequency / concurrency limits
    busy=frozenset({-1}),  # system busy
)
USER_NOT_FOUND: Final = 60111
DEPARTMENT_NOT_FOUND: Final = 60123
_USER_IDS_PER_PAGE: Final = 1000  # user/list_id allows 1..10,000


class WeComDirectory:
    def __init__(
        self,
        api_base: str,
        corp_id: str,
        secret: str,
        proxy: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        qps: float = DEFAULT_API_QPS,
    ) -> None:
        self._corp_id = corp_id
        self._secret = secret
        self._http = VendorHttp("WeCom", api_base, proxy, timeout, qps, transport)
        self._token = AccessToken(self._new_token)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_user(self, userid: str) -> SourceUser | None:
        data = await self._call("/cgi-bin/user/get", {"userid": userid}, USER_NOT_FOUND)
        if data is None:
            return None
        status = int(data.get("status", 1))
        return SourceUser(
            userid=str(data["userid"]),
            name=str(data.get("name") or data["userid"]),
            departments=tuple(numeric_id(d) for d in data.get("department", [])),
            main_department=_id_or_none(data.get("main_department")),
            position=str(data.get("position") or ""),
            email=str(data.get("biz_mail") or data.get("email") or ""),
            mobile=str(data.get("mobile") or ""),
            telephone=str(data.get("telephone") or ""),
            active=status in ACTIVE_STATUSES,
            direct_leaders=tuple(str(x) for x in data.get("direct_leader", [])),
            biz_mail=str(data.get("biz_mail") or ""),
            alias=str(data.get("alias") or ""),
            custom=wecom_extattr(data),
        )

    async def get_department(self, department_id: str) -> SourceDepartment | None:
        params = {"id": str(number_of(department_id))}
        data = await self._call("/cgi-bin/department/get", params, DEPARTMENT_NOT_FOUND)
        if data is None:
            return None
        department = data["department"]
        return SourceDepartment(
            id=numeric_id(department["id"]),
            name=str(department["name"]),
            parent_id=numeric_parent(department.get("parentid")),
            order=int(department.get("order", 0)),
        )

    async def walk_departments(self) -> list[SourceDepartment]:
        """Every department the app can see: ids from department/simplelist, each one's name
        from department/get (department/list is closed to new deployments)."""
        listed = await self._call("/cgi-bin/department/simplelist", {}, DEPARTMENT_NOT_FOUND)
        ids = [numeric_id(d["id"]) for d in (listed or {}).get("department_id", [])]
        found = await gather_bounded(ids, self.get_department, WALK_CONCURRENCY)
        return [d for d in found if d is not None]  # None: deleted since it was listed

    async def walk_user_ids(self, departments: Iterable[str]) -> set[str]:
        """Every userid, from user/list_id page by page (the whole corp at once: `departments`
        is not needed here; a user is listed once per department it is in)."""
        userids: set[str] = set()
        cursor = ""
        while True:
            body = {"cursor": cursor, "limit": _USER_IDS_PER_PAGE}
            page = await call_with_token(
                self._http, self._token, CODES, "POST", "/cgi-bin/user/list_id", {}, body, 0
            )
            userids.update(str(row["userid"]) for row in (page or {}).get("dept_user", []))
            cursor = str((page or {}).get("next_cursor") or "")
            if not cursor:
                return userids

    async def _call(
        self, path: str, params: dict[str, str], not_found: int
    ) -> dict[str, Any] | None:
        """GET with a token; `None` when WeCom answers `not_found`."""
        return await call_with_token(
            self._http, self._token, CODES, "GET", path, params, None, not_found
        )

    async def _new_token(self) -> tuple[str, float]:
        return await wecom_token(self._http, self._corp_id, self._secret)


async def wecom_token(http: VendorHttp, corp_id: str, secret: str) -> tuple[str, float]:
    """A token for this secret (the app's, or the contact-sync one that writes)."""
    params = {"corpid": corp_id, "corpsecret": secret}
    data = await http.call("GET", "/cgi-bin/gettoken", params)
    errcode = int(data.get("errcode", 0))
    if errcode in CODES.busy | CODES.throttle:
        raise VendorUnavailable(f"WeCom gettoken errcode {errcode}")
    if errcode:
        raise VendorRejected(errcode, str(data.get("errmsg", "")))
    return str(data["access_token"]), float(data.get("expires_in", 7200))


def _id_or_none(value: Any) -> str | None:
    return numeric_id(value) if value not in (None, "", 0) else None
