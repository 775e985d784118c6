"""A simulated WeCom corp: a directory in memory, its change callbacks, and its API.

Each change method mutates the directory and returns the `change_contact` plaintext WeCom would
send, in the full-field form (`form="full"`, pre-2022 apps) or the id-only form sync-assistant
URLs get since 2022-08-15 (`form="ids"`). `signed_request` encrypts and signs a plaintext exactly
as WeCom does (receiver.crypto.encrypt is bit-identical to the vendor SDK, see test_crypto).
Renames in the id-only form return None: WeCom no longer sends them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import ClassVar, Literal
from urllib.parse import quote

from schemas.config import decode_aes_key
from schemas.vendors import crypto
from workers.simulator.directory import ROOT_ID, SimDepartment, SimulatedDirectory, SimUser

__all__ = ["ROOT_ID", "Form", "SignedRequest", "SimDepartment", "SimUser", "WeComSimulator"]

Form = Literal["full", "ids"]


@dataclass(frozen=True)
class SignedRequest:
    query_string: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()  # Feishu signs in headers


@dataclass(kw_only=True)
class WeComSimulator(SimulatedDirectory):
    corp_id: str
    token: str
    encoding_aes_key: str
    secret: str
    sync_secret: str = ""  # the contact-sync secret: its tokens may write
    clock_offset: float = 0.0
    vendor: ClassVar[str] = "wecom"
    supports_status: ClassVar[bool] = True
    supports_userid_rename: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._key = decode_aes_key(self.encoding_aes_key)
        self._last_create_time = 0

    # ---- directory changes -> callback plaintext -----------------------------------------

    def create_department(
        self, name: str, parent_id: int, form: Form, department_id: int | None = None
    ) -> bytes:
        assert parent_id in self.departments
        new_id = self.new_department_id() if department_id is None else department_id
        department = SimDepartment(new_id, name, parent_id, new_id)
        self.departments[department.id] = department
        fields: dict[str, object] = {"Id": department.id, "ParentId": parent_id}
        if form == "full":
            fields |= {"Name": name, "Order": department.order}
        return self._event("create_party", fields)

    def rename_department(self, department_id: int, name: str, form: Form) -> bytes | None:
        self.departments[department_id] = replace(self.departments[department_id], name=name)
        if form == "ids":
            return None  # since 2022-08-15 WeCom does not call back renames at all
        return self._event("update_party", {"Id": department_id, "Name": name})

    def move_department(self, department_id: int, parent_id: int, form: Form) -> bytes:
        assert parent_id not in self.subtree(department_id), "would make a cycle"
        moved = replace(self.departments[department_id], parent_id=parent_id)
        self.departments[department_id] = moved
        return self._event("update_party", {"Id": department_id, "ParentId": parent_id})

    def delete_department(self, department_id: int) -> bytes:
        assert department_id != ROOT_ID
        assert self.is_empty(department_id)
        del self.departments[department_id]
        return self._event("delete_party", {"Id": department_id})

    def create_user(self, user: SimUser, form: Form) -> bytes:
        assert user.userid not in self.users
        assert all(d in self.departments for d in user.departments)
        self.users[user.userid] = user
        self.departed.pop(user.userid, None)
        fields: dict[str, object] = {"UserID": user.userid, "Department": _csv(user.departments)}
        if form == "full":
            fields |= self._full_user_fields(user)
        return self._event("create_user", fields)

    def update_user(self, userid: str, form: Form, **changes: object) -> bytes:
        before = self.users[userid]
        after = replace(before, **changes)  # type: ignore[arg-type]
        self.users[userid] = after
        fields: dict[str, object] = {"UserID": userid}
        if "departments" in changes or form == "ids":
            fields["Department"] = _csv(after.departments)
        if form == "full":
            full = self._full_user_fields(after)
            changed = {k: v for k, v in full.items() if self._full_user_fields(before)[k] != v}
            fields |= changed
        return self._event("update_user", fields)

    def rename_userid(self, userid: str, new_userid: str, form: Form) -> bytes:
        user = self.users.pop(userid)
        self.users[new_userid] = replace(user, userid=new_userid)
        # The old id is gone from the directory. The target may keep it deactivated, when an
        # event for the new id overtook the rename (they are keyed, and ordered, apart).
        self.departed[userid] = user
        fields: dict[str, object] = {"UserID": userid, "NewUserID": new_userid}
        if form == "full":
            fields["Name"] = user.name
        return self._event("update_user", fields)

    def delete_user(self, userid: str) -> bytes:
        self.departed[userid] = self.users.pop(userid)
        return self._event("delete_user", {"UserID": userid})

    # ---- the wire ------------------------------------------------------------------------------

    def signed_request(self, plaintext: bytes, now: float | None = None) -> SignedRequest:
        """The POST WeCom would send: fresh timestamp and nonce, encrypted and signed."""
        timestamp = str(int(time.time() + self.clock_offset if now is None else now))
        nonce = str(int.from_bytes(os.urandom(4), "big"))
        encrypt = crypto.encrypt(self._key, plaintext, self.corp_id)
        signature = crypto.signature(self.token, timestamp, nonce, encrypt)
        body = (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
        )
        query = f"msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
        return SignedRequest(query, body.encode())

    def url_verification(self, echo: str) -> str:
        """The query string of WeCom's GET handshake."""
        timestamp, nonce = str(int(time.time())), str(int.from_bytes(os.urandom(4), "big"))
        echostr = crypto.encrypt(self._key, echo.encode(), self.corp_id)
        signature = crypto.signature(self.token, timestamp, nonce, echostr)
        return (
            f"msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
            f"&echostr={quote(echostr, safe='')}"
        )

    def _event(self, change_type: str, fields: dict[str, object]) -> bytes:
        parts = [
            f"<ToUserName><![CDATA[{self.corp_id}]]></ToUserName>",
            "<FromUserName><![CDATA[sys]]></FromUserName>",
            f"<CreateTime>{self._create_time()}</CreateTime>",
            "<MsgType><![CDATA[event]]></MsgType>",
            "<Event><![CDATA[change_contact]]></Event>",
            f"<ChangeType>{change_type}</ChangeType>",
        ]
        parts += [f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields.items()]
        return ("<xml>" + "".join(parts) + "</xml>").encode()

    def _create_time(self) -> int:
        """Strictly increasing: two changes never share a plaintext, as at WeCom where a
        genuine repeat of a change is a new event with its own CreateTime."""
        self._last_create_time = max(int(time.time()), self._last_create_time + 1)
        return self._last_create_time

    @staticmethod
    def _full_user_fields(user: SimUser) -> dict[str, object]:
        return {
            "Name": user.name,
            "Department": _csv(user.departments),
            "MainDepartment": user.main_department,
            "Position": user.position,
            "Email": user.email,
            "Mobile": user.mobile,
            "Status": user.status,
        }


def _csv(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)
