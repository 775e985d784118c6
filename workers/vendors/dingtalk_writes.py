"""DingTalk's contact write APIs (docs/vendors.md §2.8): `topapi/v2/user/create|update|delete`
and `topapi/v2/department/create|update|delete`, with the token of an app that has the
contact-maintenance permission (the same app key that reads).

DingTalk keeps no disabled user: `can_disable` is False, and the provisioning path deletes a
user the IdP deactivates. Throttling is retried once here, then surfaces (429 to the IdP).
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from schemas.config import DEFAULT_API_QPS
from workers.vendors.dingtalk import CODES, dingtalk_token
from workers.vendors.http import AccessToken, ErrorCodes, VendorHttp, call_with_token
from workers.vendors.source import number_of
from workers.vendors.writes import DepartmentWrite, UserWrite

WRITE_CODES: Final = ErrorCodes(token=CODES.token, throttle=CODES.throttle, busy=CODES.busy)
_NOTHING_IS_GONE: Final[frozenset[int]] = frozenset()


class DingTalkWriter:
    can_disable: Final = False
    needs_mobile: Final = True

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
        self._http = VendorHttp("DingTalk", api_base, proxy, timeout, qps, transport, retries=1)
        self._token = AccessToken(self._new_token)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def create_user(self, user: UserWrite) -> None:
        await self._post("/topapi/v2/user/create", _user_body(user))

    async def update_user(self, user: UserWrite, before: UserWrite) -> None:
        full, old = _user_body(user), _user_body(before)
        changed = {k: v for k, v in full.items() if v != old[k]}
        await self._post("/topapi/v2/user/update", {"userid": user.userid, **changed})

    async def delete_user(self, userid: str) -> None:
        await self._post("/topapi/v2/user/delete", {"userid": userid})

    async def create_department(self, department: DepartmentWrite) -> str:
        answer = await self._post("/topapi/v2/department/create", _department_body(department))
        return str(int(answer["result"]["dept_id"]))

    async def update_department(self, department_id: str, department: DepartmentWrite) -> None:
        body = {"dept_id": number_of(department_id), **_department_body(department)}
        await self._post("/topapi/v2/department/update", body)

    async def delete_department(self, department_id: str) -> None:
        await self._post("/topapi/v2/department/delete", {"dept_id": number_of(department_id)})

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = await call_with_token(
            self._http, self._token, WRITE_CODES, "POST", path, {}, body, _NOTHING_IS_GONE
        )
        return answer or {}

    async def _new_token(self) -> tuple[str, float]:
        return await dingtalk_token(self._http, self._app_key, self._app_secret)


def _user_body(user: UserWrite) -> dict[str, Any]:
    return {
        "userid": user.userid,
        "name": user.name,
        "mobile": user.mobile,
        "email": user.email,
        "title": user.title,
        # The first department is the one DingTalk lists first: the main one.
        "dept_id_list": ",".join(
            str(number_of(d))
            for d in (
                user.main_department,
                *(d for d in user.departments if d != user.main_department),
            )
        ),
        "manager_userid": user.leaders[0] if user.leaders else "",
    }


def _department_body(department: DepartmentWrite) -> dict[str, Any]:
    return {
        "name": department.name,
        "parent_id": number_of(department.parent_id),
        "order": department.order,
    }
