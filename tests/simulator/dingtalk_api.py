"""The DingTalk API subset the worker calls, served from a simulator's directory
(vendor-protocols §2.6), with real response shapes and errcodes and injectable faults.

gettoken (40089 bad appkey/appsecret), topapi/v2/user/get (60121 not found),
topapi/v2/department/get (60003 not found); 40014 for an unknown token, 42001 for an expired
one. `expire_tokens()` expires every issued token; `throttle(n)` answers the next n calls with a
rate-limit error (errcode 90018, or HTTP 429). Each call is recorded with whether it came
through a forward proxy (the test proxy adds a `Via` header).
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

from tests.simulator.dingtalk import DingTalkSimulator


@dataclass(frozen=True)
class ApiCall:
    path: str
    via_proxy: bool


def _error(errcode: int, errmsg: str) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "errmsg": errmsg, "request_id": secrets.token_hex(6)})


class DingTalkApi:
    def __init__(self, sim: DingTalkSimulator) -> None:
        self.sim = sim
        self.tokens: set[str] = set()
        self.expired: set[str] = set()
        self.calls: list[ApiCall] = []
        self.throttled_answers: list[int] = []  # errcodes (or 429) still to answer with
        self.app = Starlette(
            routes=[
                Route("/gettoken", self.gettoken),
                Route("/topapi/v2/user/get", self.user_get, methods=["POST"]),
                Route("/topapi/v2/department/get", self.department_get, methods=["POST"]),
            ]
        )

    def expire_tokens(self) -> None:
        self.expired |= self.tokens
        self.tokens.clear()

    def throttle(self, calls: int, errcode: int = 90018) -> None:
        self.throttled_answers.extend([errcode] * calls)

    async def gettoken(self, request: Request) -> Response:
        refused = self._record(request)
        if refused is not None:
            return refused
        credentials = (request.query_params.get("appkey"), request.query_params.get("appsecret"))
        if credentials != (self.sim.app_key, self.sim.app_secret):
            return _error(40089, "不合法的appkey或appsecret")
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return JSONResponse(
            {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}
        )

    async def user_get(self, request: Request) -> Response:
        refused = self._record(request) or self._check_token(request)
        if refused is not None:
            return refused
        body = await self._body(request)
        user = self.sim.users.get(str(body.get("userid", "")))
        if user is None:
            return _error(60121, "找不到该用户")
        result = {
            "userid": user.userid,
            "unionid": f"union-{user.userid}",
            "name": user.name,
            "mobile": user.mobile,
            "email": "",
            "org_email": user.email,
            "title": user.position,
            "dept_id_list": [user.main_department]
            + [d for d in user.departments if d != user.main_department],
            "leader_in_dept": [{"dept_id": d, "leader": False} for d in user.departments],
            "active": True,
            "admin": False,
            "boss": False,
            "senior": False,
            "real_authed": True,
        }
        return self._ok(result)

    async def department_get(self, request: Request) -> Response:
        refused = self._record(request) or self._check_token(request)
        if refused is not None:
            return refused
        body = await self._body(request)
        raw_id = body.get("dept_id")
        department = self.sim.departments.get(raw_id) if isinstance(raw_id, int) else None
        if department is None:
            return _error(60003, "部门不存在")
        result: dict[str, Any] = {
            "dept_id": department.id,
            "name": department.name,
            "order": department.order,
            "auto_add_user": True,
            "create_dept_group": False,
        }
        if department.parent_id:
            result["parent_id"] = department.parent_id
        return self._ok(result)

    def _record(self, request: Request) -> Response | None:
        self.calls.append(ApiCall(request.url.path, "via" in request.headers))
        if not self.throttled_answers:
            return None
        code = self.throttled_answers.pop(0)
        if code == 429:
            return Response("Too Many Requests", status_code=429)
        return _error(code, "当前企业调用该接口的QPS超过限制")

    def _check_token(self, request: Request) -> Response | None:
        token = request.query_params.get("access_token", "")
        if token in self.expired:
            return _error(42001, "access_token超时")
        if token not in self.tokens:
            return _error(40014, "不合法的access_token")
        return None

    @staticmethod
    async def _body(request: Request) -> dict[str, Any]:
        data = orjson.loads(await request.body())
        return data if isinstance(data, dict) else {}

    @staticmethod
    def _ok(result: dict[str, Any]) -> JSONResponse:
        return JSONResponse(
            {"errcode": 0, "errmsg": "ok", "result": result, "request_id": secrets.token_hex(6)}
        )
