"""The DingTalk API subset the worker calls, served from a simulator's directory
(docs/vendors.md §2.6), with real response shapes and errcodes and injectable faults.

gettoken (40089 bad appkey/appsecret), topapi/v2/user/get (60121 not found),
topapi/v2/department/get (60003 not found), topapi/v2/department/listsub, topapi/user/listid,
call_back/get_call_back_failed_result (at most 200 a call, forgotten once handed out); 40014 for
an unknown token, 42001 for an expired one. `expire_tokens()` expires every issued token;
`throttle(n)` answers the next n calls with a rate-limit error (errcode 90018, or HTTP 429);
`faults` scripts errors and pauses per path; `undelivered(plaintext)` keeps a callback as one
DingTalk failed to deliver. Each call is recorded with whether it came through a forward proxy
(the test proxy adds a `Via` header).
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
from workers.simulator.dingtalk import DingTalkSimulator
from workers.simulator.dingtalk_writes import DingTalkWrites
from workers.simulator.wecom_writes import Notify

_FAILED_PER_CALL = 200


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
        self.faults = ApiFaults()
        self.failed_callbacks: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/gettoken", self.gettoken),
                Route("/topapi/v2/user/get", self.user_get, methods=["POST"]),
                Route("/topapi/v2/department/get", self.department_get, methods=["POST"]),
                Route("/topapi/v2/department/listsub", self.department_listsub, methods=["POST"]),
                Route("/topapi/user/listid", self.user_listid, methods=["POST"]),
                Route("/call_back/get_call_back_failed_result", self.failed_result),
            ]
        )
        self.writes = DingTalkWrites(sim, self._refused_write)
        self.app.router.routes.extend(self.writes.routes())

    def notify_with(self, notify: Notify | None) -> None:
        """Send each write's callbacks through `notify`, as DingTalk calls the app's URL."""
        self.writes.notify = notify

    async def _refused_write(self, request: Request, path: str, subject: str) -> Response | None:
        refused = self._record(request) or self._check_token(request)
        if refused is not None:
            return refused
        errcode = await self.faults.check(path, subject)
        return _error(errcode, "系统繁忙") if errcode is not None else None

    def undelivered(self, plaintext: bytes) -> None:
        """Keep a callback as one DingTalk could not deliver, in the failed-result shape:
        `{"call_back_tag", "event_time", <tag>: {"userid"|"deptid": [...], "corpid"}}`."""
        fields = orjson.loads(plaintext)
        tag = str(fields["EventType"])
        users = fields.get("UserId", fields.get("userId"))
        departments = fields.get("DeptId", fields.get("deptId"))
        data: dict[str, Any] = {"corpid": self.sim.corp_id}
        if users is not None:
            data["userid"] = users
        if departments is not None:
            data["deptid"] = departments
        event_time = int(fields.get("TimeStamp") or fields.get("EventTime") or 0)
        self.failed_callbacks.append({"call_back_tag": tag, "event_time": event_time, tag: data})

    async def failed_result(self, request: Request) -> Response:
        refused = await self._checked(request)
        if refused is not None:
            return refused
        handed = self.failed_callbacks[:_FAILED_PER_CALL]
        del self.failed_callbacks[:_FAILED_PER_CALL]  # DingTalk forgets what it hands out
        return JSONResponse(
            {
                "errcode": 0,
                "errmsg": "ok",
                "has_more": bool(self.failed_callbacks),
                "failed_list": handed,
            }
        )

    async def department_listsub(self, request: Request) -> Response:
        refused = await self._checked(request)
        if refused is not None:
            return refused
        parent = (await self._body(request)).get("dept_id")
        if parent not in self.sim.departments:
            return _error(60003, "部门不存在")
        children = [
            {"dept_id": d.id, "name": d.name, "parent_id": d.parent_id, "auto_add_user": True}
            for d in self.sim.departments.values()
            if d.parent_id == parent and d.id != parent
        ]
        return self._ok(children)

    async def user_listid(self, request: Request) -> Response:
        refused = await self._checked(request)
        if refused is not None:
            return refused
        department = (await self._body(request)).get("dept_id")
        if department not in self.sim.departments:
            return _error(60003, "部门不存在")
        members = sorted(u.userid for u in self.sim.users.values() if department in u.departments)
        return self._ok({"userid_list": members})

    async def _checked(self, request: Request) -> Response | None:
        refused = self._record(request) or self._check_token(request)
        if refused is not None:
            return refused
        errcode = await self.faults.check(request.url.path)
        return _error(errcode, "系统繁忙") if errcode is not None else None

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
        refused = await self._checked(request)
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
            "extension": orjson.dumps(dict(user.custom)).decode() if user.custom else "",
            "title": user.position,
            "dept_id_list": [user.main_department]
            + [d for d in user.departments if d != user.main_department],
            "leader_in_dept": [{"dept_id": d, "leader": False} for d in user.departments],
            "active": True,
            "manager_userid": self.writes.managers.get(user.userid, ""),
            "admin": False,
            "boss": False,
            "senior": False,
            "real_authed": True,
        }
        return self._ok(result)

    async def department_get(self, request: Request) -> Response:
        refused = await self._checked(request)
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
    def _ok(result: Any) -> JSONResponse:
        return JSONResponse(
            {"errcode": 0, "errmsg": "ok", "result": result, "request_id": secrets.token_hex(6)}
        )
