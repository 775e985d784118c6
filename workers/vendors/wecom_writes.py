"""WeCom's contact write APIs (docs/vendors.md §1.8), called with a token of the contact-sync
secret: self-built apps may only read, and WeCom answers their writes with 48002.

`6000` (a concurrent edit of the same data) is retried later like a busy answer; throttling is
retried once here, then surfaces, so the IdP that asked is told to come back (429).
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from schemas.config import DEFAULT_API_QPS
from workers.vendors.http import AccessToken, ErrorCodes, VendorHttp, call_with_token
from workers.vendors.source import number_of
from workers.vendors.wecom import wecom_token
from workers.vendors.writes import DepartmentWrite, UserWrite

WRITE_CODES: Final = ErrorCodes(
    token=frozenset({40001, 40014, 42001}),
    throttle=frozenset({45009, 45033}),
    busy=frozenset({-1, 6000}),
)
_NOTHING_IS_GONE: Final[frozenset[int]] = frozenset()
_DEPARTMENT_FIELDS: Final = ("department", "order", "is_leader_in_dept", "main_department")


class WeComWriter:
    can_disable: Final = True
    needs_mobile: Final = False

    def __init__(
        self,
        api_base: str,
        corp_id: str,
        sync_secret: str,
        proxy: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        qps: float = DEFAULT_API_QPS,
    ) -> None:
        self._corp_id = corp_id
        self._secret = sync_secret
        self._http = VendorHttp("WeCom", api_base, proxy, timeout, qps, transport, retries=1)
        self._token = AccessToken(self._new_token)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def create_user(self, user: UserWrite) -> None:
        await self._post("/cgi-bin/user/create", _user_body(user))

    async def update_user(self, user: UserWrite, before: UserWrite) -> None:
        full, old = _user_body(user), _user_body(before)
        changed = {k: v for k, v in full.items() if v != old[k]}
        if {"department", "main_department"} & set(changed):  # sent together, as WeCom wants
            changed |= {k: full[k] for k in _DEPARTMENT_FIELDS}
        await self._post("/cgi-bin/user/update", {"userid": user.userid, **changed})

    async def delete_user(self, userid: str) -> None:
        await self._get("/cgi-bin/user/delete", {"userid": userid})

    async def create_department(self, department: DepartmentWrite) -> str:
        answer = await self._post("/cgi-bin/department/create", _department_body(department))
        return str(int(answer["id"]))

    async def update_department(self, department_id: str, department: DepartmentWrite) -> None:
        body = {"id": number_of(department_id), **_department_body(department)}
        await self._post("/cgi-bin/department/update", body)

    async def delete_department(self, department_id: str) -> None:
        await self._get("/cgi-bin/department/delete", {"id": str(number_of(department_id))})

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await call_with_token(
            self._http, self._token, WRITE_CODES, "POST", path, {}, body, _NOTHING_IS_GONE
        )
        return answer or {}

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        answer = await call_with_token(
            self._http, self._token, WRITE_CODES, "GET", path, params, None, _NOTHING_IS_GONE
        )
        return answer or {}

    async def _new_token(self) -> tuple[str, float]:
        return await wecom_token(self._http, self._corp_id, self._secret)


def _user_body(user: UserWrite) -> dict[str, Any]:
    departments = [number_of(d) for d in user.departments]
    return {
        "userid": user.userid,
        "name": user.name,
        "mobile": user.mobile,
        "email": user.email,
        "position": user.title,
        "department": departments,
        "order": [0] * len(departments),
        "is_leader_in_dept": [0] * len(departments),
        "main_department": number_of(user.main_department),
        "direct_leader": list(user.leaders),
        "enable": 1 if user.active else 0,
        "to_invite": False,
    }


def _department_body(department: DepartmentWrite) -> dict[str, Any]:
    return {
        "name": department.name,
        "parentid": number_of(department.parent_id),
        "order": department.order,
    }
