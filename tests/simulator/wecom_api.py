"""The WeCom API subset the worker calls, served from a simulator's directory.

Real response shapes and errcodes: gettoken (40013 bad corpid, 40001 bad secret), user/get
(60111 not found), department/get (60123 not found), 40014 for a bad access token. `expire_tokens`
makes every issued token invalid, to exercise the client's refresh path.
"""

from __future__ import annotations

import secrets

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.simulator.wecom import WeComSimulator


def _error(errcode: int, errmsg: str) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "errmsg": errmsg})


class WeComApi:
    def __init__(self, sim: WeComSimulator) -> None:
        self.sim = sim
        self.tokens: set[str] = set()
        self.calls: list[str] = []
        self.app = Starlette(
            routes=[
                Route("/cgi-bin/gettoken", self.gettoken),
                Route("/cgi-bin/user/get", self.user_get),
                Route("/cgi-bin/department/get", self.department_get),
            ]
        )

    def expire_tokens(self) -> None:
        self.tokens.clear()

    async def gettoken(self, request: Request) -> JSONResponse:
        self.calls.append("gettoken")
        if request.query_params.get("corpid") != self.sim.corp_id:
            return _error(40013, "invalid corpid")
        if request.query_params.get("corpsecret") != self.sim.secret:
            return _error(40001, "invalid credential")
        token = secrets.token_hex(16)
        self.tokens.add(token)
        return JSONResponse(
            {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}
        )

    async def user_get(self, request: Request) -> JSONResponse:
        self.calls.append("user/get")
        if request.query_params.get("access_token") not in self.tokens:
            return _error(40014, "invalid access_token")
        user = self.sim.users.get(request.query_params.get("userid", ""))
        if user is None:
            return _error(60111, "userid not found")
        return JSONResponse(
            {
                "errcode": 0,
                "errmsg": "ok",
                "userid": user.userid,
                "name": user.name,
                "department": list(user.departments),
                "order": [0] * len(user.departments),
                "position": user.position,
                "mobile": user.mobile,
                "email": user.email,
                "is_leader_in_dept": [0] * len(user.departments),
                "direct_leader": [],
                "status": user.status,
                "main_department": user.main_department,
            }
        )

    async def department_get(self, request: Request) -> JSONResponse:
        self.calls.append("department/get")
        if request.query_params.get("access_token") not in self.tokens:
            return _error(40014, "invalid access_token")
        raw_id = request.query_params.get("id", "")
        department = self.sim.departments.get(int(raw_id)) if raw_id.isdigit() else None
        if department is None:
            return _error(60123, "invalid party id")
        return JSONResponse(
            {
                "errcode": 0,
                "errmsg": "ok",
                "department": {
                    "id": department.id,
                    "name": department.name,
                    "name_en": "",
                    "department_leader": [],
                    "parentid": department.parent_id,
                    "order": department.order,
                },
            }
        )
