"""The WeCom API subset the worker calls: gettoken, user/get, department/get.

Tokens are cached per (corp id, secret) and refreshed early; the token errors refresh once and
retry; rate-limit and busy errors become `VendorUnavailable` so the event is retried later.
Every call goes through the tenant's HTTPS forward proxy when one is configured.
"""

from __future__ import annotations

import time
from typing import Any, Final

import httpx
import orjson

from workers.errors import VendorRejected, VendorUnavailable
from workers.source import ACTIVE_STATUSES, SourceDepartment, SourceUser

TOKEN_ERRORS: Final = frozenset({40001, 40014, 42001})
BUSY_ERRORS: Final = frozenset({-1, 45009, 45033})
USER_NOT_FOUND: Final = 60111
DEPARTMENT_NOT_FOUND: Final = 60123
_REFRESH_MARGIN: Final = 300.0  # renew five minutes before WeCom says the token expires


class WeComDirectory:
    def __init__(
        self,
        api_base: str,
        corp_id: str,
        secret: str,
        proxy: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._corp_id = corp_id
        self._secret = secret
        self._http = httpx.AsyncClient(
            base_url=api_base, proxy=proxy, timeout=timeout, transport=transport
        )
        self._token: tuple[str, float] | None = None

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
            departments=tuple(int(d) for d in data.get("department", [])),
            main_department=_int_or_none(data.get("main_department")),
            position=str(data.get("position") or ""),
            email=str(data.get("biz_mail") or data.get("email") or ""),
            mobile=str(data.get("mobile") or ""),
            telephone=str(data.get("telephone") or ""),
            active=status in ACTIVE_STATUSES,
            direct_leaders=tuple(str(x) for x in data.get("direct_leader", [])),
        )

    async def get_department(self, department_id: int) -> SourceDepartment | None:
        params = {"id": str(department_id)}
        data = await self._call("/cgi-bin/department/get", params, DEPARTMENT_NOT_FOUND)
        if data is None:
            return None
        department = data["department"]
        return SourceDepartment(
            id=int(department["id"]),
            name=str(department["name"]),
            parent_id=int(department.get("parentid", 0)),
            order=int(department.get("order", 0)),
        )

    async def _call(
        self, path: str, params: dict[str, str], not_found: int
    ) -> dict[str, Any] | None:
        """GET with a token; `None` when WeCom answers `not_found`."""
        for fresh_token in (False, True):
            token = await self._access_token(force=fresh_token)
            data = await self._get(path, {**params, "access_token": token})
            errcode = int(data.get("errcode", 0))
            if errcode == 0:
                return data
            if errcode == not_found:
                return None
            if errcode in TOKEN_ERRORS and not fresh_token:
                continue
            if errcode in BUSY_ERRORS:
                raise VendorUnavailable(f"WeCom {path} errcode {errcode}")
            raise VendorRejected(errcode, str(data.get("errmsg", "")))
        raise VendorRejected(40014, "access token refused twice")

    async def _access_token(self, force: bool) -> str:
        now = time.monotonic()
        if self._token and not force and now < self._token[1]:
            return self._token[0]
        data = await self._get(
            "/cgi-bin/gettoken", {"corpid": self._corp_id, "corpsecret": self._secret}
        )
        errcode = int(data.get("errcode", 0))
        if errcode in BUSY_ERRORS:
            raise VendorUnavailable(f"WeCom gettoken errcode {errcode}")
        if errcode:
            raise VendorRejected(errcode, str(data.get("errmsg", "")))
        expires_in = float(data.get("expires_in", 7200))
        self._token = (str(data["access_token"]), now + max(60.0, expires_in - _REFRESH_MARGIN))
        return self._token[0]

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            response = await self._http.get(path, params=params)
        except httpx.TransportError as exc:
            raise VendorUnavailable(f"WeCom {path}: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise VendorUnavailable(f"WeCom {path}: HTTP {response.status_code}")
        try:
            data: dict[str, Any] = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise VendorUnavailable(f"WeCom {path}: answer is not JSON") from exc
        return data


def _int_or_none(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None
