"""DingTalk's contact write APIs (`topapi/v2/user/*`, `topapi/v2/department/*`), served from a
simulator's directory (docs/vendors.md §2.8).

Only an app with the contact-maintenance permission writes (60011 otherwise: `writes_allowed`).
Each call checks what DingTalk checks, with its errcodes: 40035 a required parameter missing
(a user needs `name`, `mobile` and `dept_id_list`), 60102 userid taken, 60103/60104 bad or
taken mobile, 60105/60106 bad or taken email, 60112 bad name, 60121 unknown user, 60003 unknown
department, 60001 bad department name, 60004 unknown parent, 60008 the name taken under the
parent, 60010 a cycle, 60005/60006 members or children left, 60007 the root. DingTalk has no
disabled user. After each write, the callback DingTalk sends goes through `notify`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workers.simulator.dingtalk import DingTalkSimulator
from workers.simulator.directory import ROOT_ID, SimUser
from workers.simulator.wecom_writes import Notify
from workers.simulator.write_checks import (
    EMAIL,
    MOBILE,
    USERID,
    Errcode,
    refuse_deletion,
    refuse_taken_name,
)

Refused = Callable[[Request, str, str], Awaitable[Response | None]]


class DingTalkWrites:
    def __init__(self, sim: DingTalkSimulator, refused: Refused) -> None:
        self.sim = sim
        self.notify: Notify | None = None
        self.managers: dict[str, str] = {}  # userid -> manager_userid
        self.writes_allowed = True
        self._refused = refused

    def routes(self) -> list[Route]:
        calls = {
            "user/create": self._user_create,
            "user/update": self._user_update,
            "user/delete": self._user_delete,
            "department/create": self._department_create,
            "department/update": self._department_update,
            "department/delete": self._department_delete,
        }
        return [
            Route(f"/topapi/v2/{name}", self._handler(name, act), methods=["POST"])
            for name, act in calls.items()
        ]

    def _handler(
        self, name: str, act: Callable[[dict[str, Any]], Awaitable[Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                loaded = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                return _answer(40035, "缺少参数")
            body = loaded if isinstance(loaded, dict) else {}
            subject = str(body.get("userid") or body.get("dept_id") or "")
            refused = await self._refused(request, f"/topapi/v2/{name}", subject)
            if refused is not None:
                return refused
            if not self.writes_allowed:
                return _answer(60011, "没有调用该接口的权限")
            try:
                result = await act(body)
            except Errcode as error:
                return _answer(error.errcode, error.errmsg)
            return _answer(0, "ok", result)

        return handle

    async def _sent(self, plaintext: bytes) -> None:
        if self.notify is not None:
            await self.notify(plaintext)

    # ---- users ---------------------------------------------------------------------------

    async def _user_create(self, body: dict[str, Any]) -> dict[str, Any]:
        userid = str(body.get("userid") or f"u{secrets.token_hex(6)}")  # DingTalk makes one
        if not USERID.fullmatch(userid):
            raise Errcode(40035, "userid 不合法")
        if userid in self.sim.users:
            raise Errcode(60102, "UserID在公司中已存在")
        for required in ("name", "mobile", "dept_id_list"):
            if not body.get(required):
                raise Errcode(40035, f"缺少参数 {required}")
        user = self._user_of(body, SimUser(userid, "", (), 0), userid)
        self._set_manager(userid, body)
        await self._sent(self.sim.create_user(user))
        return {"userid": userid}

    async def _user_update(self, body: dict[str, Any]) -> None:
        userid = str(body.get("userid") or "")
        before = self.sim.users.get(userid)
        if before is None:
            raise Errcode(60121, "找不到该用户")
        after = self._user_of(body, before, userid)
        self._set_manager(userid, body)
        changes = {
            k: getattr(after, k)
            for k in ("name", "departments", "main_department", "position", "email", "mobile")
            if getattr(after, k) != getattr(before, k)
        }
        await self._sent(self.sim.update_user(userid, **changes))

    async def _user_delete(self, body: dict[str, Any]) -> None:
        userid = str(body.get("userid") or "")
        if userid not in self.sim.users:
            raise Errcode(60121, "找不到该用户")
        self.managers.pop(userid, None)
        await self._sent(self.sim.delete_user(userid))

    def _user_of(self, body: dict[str, Any], user: SimUser, userid: str) -> SimUser:
        name = str(body.get("name", user.name))
        if not 1 <= len(name) <= 64:
            raise Errcode(60112, "用户姓名不合法")
        mobile, email = str(body.get("mobile", user.mobile)), str(body.get("email", user.email))
        others = [u for u in self.sim.users.values() if u.userid != userid]
        if not MOBILE.fullmatch(mobile):
            raise Errcode(60103, "手机号码不合法")
        if any(u.mobile == mobile for u in others):
            raise Errcode(60104, "手机号码在公司中已注册")
        if email and not EMAIL.fullmatch(email):
            raise Errcode(60105, "邮箱不合法")
        if email and any(u.email == email for u in others):
            raise Errcode(60106, "邮箱已存在")
        listed = body.get("dept_id_list")
        departments = user.departments if listed is None else _departments(listed)
        if not departments:
            raise Errcode(40035, "缺少参数 dept_id_list")
        if any(d not in self.sim.departments for d in departments):
            raise Errcode(60003, "部门不存在")
        return replace(
            user,
            name=name,
            mobile=mobile,
            email=email,
            departments=departments,
            main_department=departments[0],
            position=str(body.get("title", user.position)),
        )

    def _set_manager(self, userid: str, body: dict[str, Any]) -> None:
        manager = body.get("manager_userid")
        if manager is None:
            return
        if manager and str(manager) not in self.sim.users:
            raise Errcode(60121, "找不到该用户 (manager_userid)")
        if manager:
            self.managers[userid] = str(manager)
        else:
            self.managers.pop(userid, None)

    # ---- departments ---------------------------------------------------------------------

    async def _department_create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = _department_name(body.get("name"))
        parent = _number(body.get("parent_id"), 60004, "父部门不存在")
        if parent not in self.sim.departments:
            raise Errcode(60004, "父部门不存在")
        self._name_free(name, parent, None)
        await self._sent(self.sim.create_department(name, parent))
        return {"dept_id": max(self.sim.departments)}

    async def _department_update(self, body: dict[str, Any]) -> None:
        department_id = _number(body.get("dept_id"), 60003, "部门不存在")
        department = self.sim.departments.get(department_id)
        if department is None:
            raise Errcode(60003, "部门不存在")
        name = _department_name(body.get("name", department.name))
        parent = _number(body.get("parent_id", department.parent_id), 60004, "父部门不存在")
        if department_id == ROOT_ID:
            parent = 0
        elif parent not in self.sim.departments:
            raise Errcode(60004, "父部门不存在")
        elif parent in self.sim.subtree(department_id):
            raise Errcode(60010, "部门不能成环")
        self._name_free(name, parent, department_id)
        if parent != department.parent_id:
            await self._sent(self.sim.move_department(department_id, parent))
        if name != department.name:
            await self._sent(self.sim.rename_department(department_id, name))

    async def _department_delete(self, body: dict[str, Any]) -> None:
        department_id = _number(body.get("dept_id"), 60003, "部门不存在")
        refuse_deletion(self.sim, department_id, _NOT_DELETABLE)
        await self._sent(self.sim.delete_department(department_id))

    def _name_free(self, name: str, parent: int, itself: int | None) -> None:
        refuse_taken_name(self.sim, name, parent, itself, "该部门下已存在同名部门")


_NOT_DELETABLE: Final = {
    60007: "根部门不允许删除",
    60003: "部门不存在",
    60006: "部门下存在子部门",
    60005: "部门下存在员工",
}


def _answer(errcode: int, errmsg: str, result: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"errcode": errcode, "errmsg": errmsg,
                            "request_id": secrets.token_hex(6)}  # fmt: skip
    if result is not None:
        body["result"] = result
    return JSONResponse(body)


def _department_name(value: object) -> str:
    name = str(value or "")
    if not 1 <= len(name) <= 64 or any(c in name for c in "-,，"):
        raise Errcode(60001, "部门名称不合法")
    return name


def _departments(value: object) -> tuple[int, ...]:
    """`dept_id_list` as DingTalk takes it: ids separated by commas."""
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    return tuple(_number(p, 60003, "部门不存在") for p in parts)


def _number(value: object, errcode: int, errmsg: str) -> int:
    text = str(value if value is not None else "")
    if not text.isascii() or not text.isdigit():
        raise Errcode(errcode, errmsg)
    return int(text)
