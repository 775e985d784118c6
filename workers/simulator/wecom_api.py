"""The WeCom API subset the worker calls, served from a simulator's directory.

Real response shapes and errcodes: gettoken (40013 bad corpid, 40001 bad secret), user/get
(60111 not found), department/get (60123 not found), department/simplelist, user/list_id (with
its cursor), 40014 for a bad access token. `expire_tokens` makes every issued token invalid, to
exercise the client's refresh path; `faults` scripts errors and pauses per path.
"""

from __future__ import annotations

import secrets

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from workers.simulator.api_faults import ApiFaults
from workers.simulator.wecom import WeComSimulator
from workers.simulator.wecom_writes import Notify, WeComWrites


def _error(errcode: int, errmsg: str) -> JSONResponse:
    return JSONResponse({"errcode": errcode, "errmsg": errmsg})


class WeComApi:
    def __init__(self, sim: WeComSimulator) -> None:
        self.sim = sim
        self.tokens: set[str] = set()
        self.sync_tokens: set[str] = set()  # issued for the contact-sync secret: may write
        self.calls: list[str] = []
        self.faults = ApiFaults()
        self.leaders: dict[str, list[str]] = {}  # userid -> its direct leaders
        self.app = Starlette(
            routes=[
                Route("/cgi-bin/gettoken", self.gettoken),
                Route("/cgi-bin/user/get", self.user_get),
                Route("/cgi-bin/department/get", self.department_get),
                Route("/cgi-bin/department/simplelist", self.department_simplelist),
                Route("/cgi-bin/user/list_id", self.user_list_id, methods=["POST"]),
            ]
        )
        self.writes = WeComWrites(sim, self._refused_write)
        self.writes.leaders = self.leaders
        self.app.router.routes.extend(self.writes.routes())

    def notify_with(self, notify: Notify | None) -> None:
        """Send each write's callbacks through `notify`, as WeCom calls the app's URL."""
        self.writes.notify = notify

    def expire_tokens(self) -> None:
        self.tokens.clear()
        self.sync_tokens.clear()

    async def gettoken(self, request: Request) -> JSONResponse:
        self.calls.append("gettoken")
        if request.query_params.get("corpid") != self.sim.corp_id:
            return _error(40013, "invalid corpid")
        given = request.query_params.get("corpsecret")
        writes = bool(self.sim.sync_secret) and given == self.sim.sync_secret
        if given != self.sim.secret and not writes:
            return _error(40001, "invalid credential")
        token = secrets.token_hex(16)
        self.tokens.add(token)
        if writes:
            self.sync_tokens.add(token)
        return JSONResponse(
            {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}
        )

    async def _refused(self, request: Request, name: str) -> JSONResponse | None:
        self.calls.append(name)
        subject = request.query_params.get("userid") or request.query_params.get("id") or ""
        errcode = await self.faults.check(name, subject)
        if errcode is not None:
            return _error(errcode, "system busy" if errcode == -1 else "scripted failure")
        if request.query_params.get("access_token") not in self.tokens:
            return _error(40014, "invalid access_token")
        return None

    async def _refused_write(
        self, request: Request, name: str, subject: str
    ) -> JSONResponse | None:
        self.calls.append(name)
        errcode = await self.faults.check(name, subject)
        if errcode is not None:
            return _error(errcode, "system busy" if errcode == -1 else "scripted failure")
        token = request.query_params.get("access_token")
        if token not in self.tokens:
            return _error(40014, "invalid access_token")
        if token not in self.sync_tokens:  # an app's secret reads; only contact sync writes
            return _error(48002, "api forbidden")
        return None

    async def department_simplelist(self, request: Request) -> JSONResponse:
        refused = await self._refused(request, "department/simplelist")
        if refused is not None:
            return refused
        listed = [
            {"id": d.id, "parentid": d.parent_id, "order": d.order}
            for d in self.sim.departments.values()
        ]
        return JSONResponse({"errcode": 0, "errmsg": "ok", "department_id": listed})

    async def user_list_id(self, request: Request) -> JSONResponse:
        """One row per user and department, `limit` rows a page; the cursor is an offset."""
        refused = await self._refused(request, "user/list_id")
        if refused is not None:
            return refused
        body = orjson.loads(await request.body())
        start = int(body.get("cursor") or 0)
        limit = min(int(body.get("limit") or 10000), 10000)
        rows = [
            {"userid": u.userid, "department": d}
            for u in sorted(self.sim.users.values(), key=lambda u: u.userid)
            for d in u.departments
        ]
        page = rows[start : start + limit]
        answer = {"errcode": 0, "errmsg": "ok", "dept_user": page}
        if start + limit < len(rows):
            answer["next_cursor"] = str(start + limit)
        return JSONResponse(answer)

    async def user_get(self, request: Request) -> JSONResponse:
        refused = await self._refused(request, "user/get")
        if refused is not None:
            return refused
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
                "alias": user.alias,
                "is_leader_in_dept": [0] * len(user.departments),
                "direct_leader": self.leaders.get(user.userid, []),
                "status": user.status,
                "main_department": user.main_department,
                "extattr": {
                    "attrs": [
                        {"type": 0, "name": name, "text": {"value": value}}
                        for name, value in user.custom
                    ]
                },
            }
        )

    async def department_get(self, request: Request) -> JSONResponse:
        refused = await self._refused(request, "department/get")
        if refused is not None:
            return refused
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
