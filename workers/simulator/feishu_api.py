"""The Feishu contact API subset the worker calls, served from a simulator's directory
(docs/vendors.md §3.5), with Feishu's response shapes and codes.

tenant_access_token/internal (10014 bad app secret), contact/v3/users/:id and
contact/v3/departments/:id (the tenant's id types; a user who left or is outside the app's
scope, and a department that is not there, answer their "gone" codes), the children of a
department (with `fetch_child`) and the users of one (`find_by_department`), both paged by
`page_token`. 99991661 without a bearer token, 99991663 for an unknown or expired one;
`throttle(n)` answers the next n calls with 99991400 (HTTP 429, with
`x-ogw-ratelimit-reset`). A user who left is served resigned; one outside the app's scope is
41050. Each call is recorded with whether it came through a forward proxy.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workers.simulator.api_faults import ApiFaults
from workers.simulator.feishu import FeishuSimulator, number_of

USER_GONE = 41050  # no user authority: not (any more) in what the app may see
DEPARTMENT_GONE = 40015  # department not exist (40004 when out of the app's scope)
_MAX_PAGE = 50


@dataclass(frozen=True)
class ApiCall:
    path: str
    via_proxy: bool


def _error(code: int, msg: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg}, status_code=status)


def _ok(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse({"code": 0, "msg": "success", "data": data})


class FeishuApi:
    def __init__(self, sim: FeishuSimulator) -> None:
        self.sim = sim
        self.tokens: set[str] = set()
        self.expired: set[str] = set()
        self.calls: list[ApiCall] = []
        self.throttled_answers: list[int] = []
        self.faults = ApiFaults()
        base = "/open-apis"
        self.app = Starlette(
            routes=[
                Route(f"{base}/auth/v3/tenant_access_token/internal", self.token, methods=["POST"]),
                Route(f"{base}/contact/v3/users/find_by_department", self.users_of),
                Route(f"{base}/contact/v3/users/{{user_id}}", self.user),
                Route(f"{base}/contact/v3/departments/{{department_id}}/children", self.children),
                Route(f"{base}/contact/v3/departments/{{department_id}}", self.department),
            ]
        )

    def expire_tokens(self) -> None:
        self.expired |= self.tokens
        self.tokens.clear()

    def throttle(self, calls: int, code: int = 99991400) -> None:
        self.throttled_answers.extend([code] * calls)

    async def token(self, request: Request) -> Response:
        refused = self._record(request)
        if refused is not None:
            return refused
        body = orjson.loads(await request.body() or b"{}")
        if (body.get("app_id"), body.get("app_secret")) != (self.sim.app_id, self.sim.app_secret):
            return JSONResponse({"code": 10014, "msg": "app secret invalid"})
        token = "t-" + secrets.token_hex(16)
        self.tokens.add(token)
        return JSONResponse({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200})

    async def user(self, request: Request) -> Response:
        refused = await self._checked(request)
        if refused is not None:
            return refused
        if request.query_params.get("user_id_type") != "user_id":
            return _error(99992402, "field validation failed: this simulator serves user_id")
        userid = request.path_params["user_id"]
        user = self.sim.users.get(userid)
        if user is None and userid in self.sim.departed and userid not in self.sim.scoped_out:
            # A leaver is still readable for a while, resigned and in no department.
            left = self.sim.user_object(self.sim.departed[userid]) | {"department_ids": []}
            left["status"] = {**left["status"], "is_resigned": True, "is_activated": False}
            return _ok({"user": left})
        if user is None:
            return _error(USER_GONE, "no user authority error")
        return _ok({"user": self.sim.user_object(user)})

    async def department(self, request: Request) -> Response:
        refused = await self._checked(request)
        if refused is not None:
            return refused
        number = self._number(request.path_params["department_id"])
        if number is None or number not in self.sim.departments:
            return _error(DEPARTMENT_GONE, "no dept authority error")
        return _ok({"department": self.sim.department_object(number)})

    async def children(self, request: Request) -> Response:
        refused = await self._checked(request)
        if refused is not None:
            return refused
        parent = self._number(request.path_params["department_id"])
        if parent is None or parent not in self.sim.departments:
            return _error(DEPARTMENT_GONE, "no dept authority error")
        below = self.sim.subtree(parent) - {parent}
        if request.query_params.get("fetch_child") != "true":
            below = {d for d in below if self.sim.departments[d].parent_id == parent}
        items = [self.sim.department_object(d) for d in sorted(below)]
        return self._page(request, items)

    async def users_of(self, request: Request) -> Response:
        refused = await self._checked(request)
        if refused is not None:
            return refused
        number = self._number(request.query_params.get("department_id", ""))
        if number is None or number not in self.sim.departments:
            return _error(DEPARTMENT_GONE, "no dept authority error")
        members = sorted(
            (u for u in self.sim.users.values() if number in u.departments), key=lambda u: u.userid
        )
        return self._page(request, [self.sim.user_object(u) for u in members])

    def _page(self, request: Request, items: list[dict[str, Any]]) -> Response:
        size = min(int(request.query_params.get("page_size") or 10), _MAX_PAGE)
        start = int(request.query_params.get("page_token") or 0)
        chunk = items[start : start + size]
        more = start + size < len(items)
        data: dict[str, Any] = {"has_more": more, "items": chunk}
        if more:
            data["page_token"] = str(start + size)
        return _ok(data)

    @staticmethod
    def _number(department_id: str) -> int | None:
        try:
            return number_of(department_id)
        except ValueError:
            return None

    async def _checked(self, request: Request) -> Response | None:
        refused = self._record(request) or self._check_token(request)
        if refused is not None:
            return refused
        if request.query_params.get("department_id_type", "open_department_id") != "department_id":
            return _error(99992402, "field validation failed: this simulator serves department_id")
        code = await self.faults.check(request.url.path)
        return _error(code, "internal error") if code is not None else None

    def _record(self, request: Request) -> Response | None:
        self.calls.append(ApiCall(request.url.path, "via" in request.headers))
        if not self.throttled_answers:
            return None
        code = self.throttled_answers.pop(0)
        if code == 429:  # the gateway's answer, before the API's
            return Response("Too Many Requests", status_code=429)
        limited = _error(code, "request trigger frequency limit", 429)
        limited.headers["x-ogw-ratelimit-reset"] = "0"
        return limited

    def _check_token(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return _error(99991661, "Missing access token for authorization", 401)
        if token not in self.tokens:
            return _error(99991663, "Invalid access token for authorization", 401)
        return None
