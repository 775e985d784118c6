"""WeCom's contact write APIs, served from a simulator's directory (docs/vendors.md §1.8).

Only a token of the contact-sync secret writes (48002 otherwise). Each call checks what WeCom
checks, in its order, with its errcodes: 40003 invalid userid, 60102 userid exists, 60112 bad
name, 60129 neither mobile nor email, 60103/60104 bad or taken mobile, 60105/60106 bad or taken
email, 60127 no department, 60003 unknown department, 60132 order list of another length, 60111
unknown user, 60004 unknown parent, 60008 department id or name taken under the parent, 60009
illegal characters, 60010 a cycle, 60005/60006 a department with members or children, 60007 the
root. After each write, the callback WeCom sends the app goes through `notify`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from workers.simulator.directory import ROOT_ID, SimUser
from workers.simulator.wecom import Form, WeComSimulator
from workers.simulator.write_checks import (
    EMAIL,
    MOBILE,
    USERID,
    Errcode,
    refuse_deletion,
    refuse_taken_name,
)

Notify = Callable[[bytes], Awaitable[None]]
Refused = Callable[[Request, str, str], Awaitable[JSONResponse | None]]

_ILLEGAL: Final = re.compile(r'[\\:*?"<>|]')


class WeComWrites:
    def __init__(self, sim: WeComSimulator, refused: Refused) -> None:
        self.sim = sim
        self.notify: Notify | None = None
        self.form: Form = "ids"  # what a contact-sync app is sent since 2022-08-15
        self.leaders: dict[str, list[str]] = {}
        self._refused = refused

    def routes(self) -> list[Route]:
        calls = {
            "user/create": (self._user_create, "POST"),
            "user/update": (self._user_update, "POST"),
            "user/delete": (self._user_delete, "GET"),
            "department/create": (self._department_create, "POST"),
            "department/update": (self._department_update, "POST"),
            "department/delete": (self._department_delete, "GET"),
        }
        return [
            Route(f"/cgi-bin/{name}", self._handler(name, act), methods=[method])
            for name, (act, method) in calls.items()
        ]

    def _handler(
        self, name: str, act: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
    ) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def handle(request: Request) -> JSONResponse:
            body: dict[str, Any] = dict(request.query_params)
            if request.method == "POST":
                try:
                    loaded = orjson.loads(await request.body())
                except orjson.JSONDecodeError:
                    return JSONResponse({"errcode": 47001, "errmsg": "data format error"})
                body = loaded if isinstance(loaded, dict) else {}
            subject = str(body.get("userid") or body.get("id") or "")
            refused = await self._refused(request, name, subject)
            if refused is not None:
                return refused
            try:
                answer = await act(body)
            except Errcode as error:
                return JSONResponse({"errcode": error.errcode, "errmsg": error.errmsg})
            return JSONResponse({"errcode": 0, "errmsg": "ok", **answer})

        return handle

    async def _sent(self, plaintext: bytes | None) -> None:
        if plaintext is not None and self.notify is not None:
            await self.notify(plaintext)

    # ---- users ---------------------------------------------------------------------------

    async def _user_create(self, body: dict[str, Any]) -> dict[str, Any]:
        userid = str(body.get("userid") or "")
        if not USERID.fullmatch(userid):
            raise Errcode(40003, "invalid userid")
        if userid in self.sim.users:
            raise Errcode(60102, "userid existed")
        user = self._user_of(body, None)
        self._set_leaders(userid, body)
        await self._sent(self.sim.create_user(replace(user, userid=userid), self.form))
        return {}

    async def _user_update(self, body: dict[str, Any]) -> dict[str, Any]:
        userid = str(body.get("userid") or "")
        before = self.sim.users.get(userid)
        if before is None:
            raise Errcode(60111, "userid not found")
        after = self._user_of(body, before)
        self._set_leaders(userid, body)
        changes = {
            k: getattr(after, k)
            for k in ("name", "departments", "main_department", "position", "email", "mobile",
                      "status")
            if getattr(after, k) != getattr(before, k)
        }  # fmt: skip
        await self._sent(self.sim.update_user(userid, self.form, **changes))
        return {}

    async def _user_delete(self, body: dict[str, Any]) -> dict[str, Any]:
        userid = str(body.get("userid") or "")
        if userid not in self.sim.users:
            raise Errcode(60111, "userid not found")
        self.leaders.pop(userid, None)
        await self._sent(self.sim.delete_user(userid))
        return {}

    def _user_of(self, body: dict[str, Any], before: SimUser | None) -> SimUser:
        """The user the call describes: `before` with what the body changes."""
        user = before or SimUser("", "", (), 0)
        name = str(body.get("name", user.name))
        if not 1 <= len(name) <= 64:
            raise Errcode(60112, "invalid name")
        mobile, email = str(body.get("mobile", user.mobile)), str(body.get("email", user.email))
        if not mobile and not email:
            raise Errcode(60129, "mobile and email can not be both empty")
        others = [u for u in self.sim.users.values() if u.userid != str(body.get("userid"))]
        if mobile and not MOBILE.fullmatch(mobile):
            raise Errcode(60103, "invalid mobile")
        if mobile and any(u.mobile == mobile for u in others):
            raise Errcode(60104, "mobile existed")
        if email and not EMAIL.fullmatch(email):
            raise Errcode(60105, "invalid email")
        if email and any(u.email == email for u in others):
            raise Errcode(60106, "email existed")
        departments = tuple(_numbers(body.get("department", list(user.departments))))
        if not departments:
            raise Errcode(60127, "department missing")
        if any(d not in self.sim.departments for d in departments):
            raise Errcode(60003, "department not found")
        order = body.get("order")
        if isinstance(order, list) and len(order) != len(departments):
            raise Errcode(60132, "the length of order and department differ")
        main = int(body.get("main_department") or user.main_department or departments[0])
        enable = body.get("enable")
        status = user.status if enable is None else (1 if int(enable) else 2)
        return replace(
            user,
            name=name,
            mobile=mobile,
            email=email,
            departments=departments,
            main_department=main if main in departments else departments[0],
            position=str(body.get("position", user.position)),
            status=status or 1,
        )

    def _set_leaders(self, userid: str, body: dict[str, Any]) -> None:
        leaders = body.get("direct_leader")
        if not isinstance(leaders, list):
            return
        if any(str(x) not in self.sim.users and str(x) != userid for x in leaders):
            raise Errcode(60111, "direct_leader userid not found")
        self.leaders[userid] = [str(x) for x in leaders]

    # ---- departments ---------------------------------------------------------------------

    async def _department_create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._valid_name(body.get("name"))
        parent = _number(body.get("parentid"))
        if parent not in self.sim.departments:
            raise Errcode(60004, "parent department not found")
        wanted = _number(body.get("id")) if body.get("id") else None
        if wanted is not None and wanted in self.sim.departments:
            raise Errcode(60008, "department id existed")
        self._name_free(name, parent, None)
        plaintext = self.sim.create_department(name, parent, self.form, wanted)
        created = max(self.sim.departments) if wanted is None else wanted
        await self._sent(plaintext)
        return {"id": created}

    async def _department_update(self, body: dict[str, Any]) -> dict[str, Any]:
        department_id = _number(body.get("id"))
        department = self.sim.departments.get(department_id)
        if department is None:
            raise Errcode(60003, "department not found")
        name = self._valid_name(body.get("name", department.name))
        parent = _number(body.get("parentid", department.parent_id))
        if department_id == ROOT_ID:
            parent = 0
        elif parent not in self.sim.departments:
            raise Errcode(60004, "parent department not found")
        elif parent in self.sim.subtree(department_id):
            raise Errcode(60010, "department cycle")
        self._name_free(name, parent, department_id)
        if parent != department.parent_id:
            await self._sent(self.sim.move_department(department_id, parent, self.form))
        if name != department.name:
            await self._sent(self.sim.rename_department(department_id, name, self.form))
        return {}

    async def _department_delete(self, body: dict[str, Any]) -> dict[str, Any]:
        department_id = _number(body.get("id"))
        refuse_deletion(self.sim, department_id, _NOT_DELETABLE)
        await self._sent(self.sim.delete_department(department_id))
        return {}

    def _valid_name(self, value: object) -> str:
        name = str(value or "")
        if not 1 <= len(name) <= 64:
            raise Errcode(60125, "invalid department name")
        if _ILLEGAL.search(name):
            raise Errcode(60009, "department name contains illegal characters")
        return name

    def _name_free(self, name: str, parent: int, itself: int | None) -> None:
        refuse_taken_name(
            self.sim, name, parent, itself, "department name existed under the parent"
        )


_NOT_DELETABLE: Final = {
    60007: "not allowed to delete the root department",
    60003: "department not found",
    60006: "department contains sub-departments",
    60005: "department contains members",
}


def _number(value: object) -> int:
    text = str(value if value is not None else "")
    if not text.isascii() or not text.isdigit():
        raise Errcode(60003, "department not found")
    return int(text)


def _numbers(value: object) -> list[int]:
    if not isinstance(value, list):
        raise Errcode(60127, "department missing")
    return [_number(v) for v in value]
