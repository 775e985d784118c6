"""A simulated DingTalk company: the shared directory, and its change callbacks as DingTalk
sends them (docs/vendors.md §2).

Each change method mutates the directory and returns the callback plaintext, in the legacy
`register_call_back` style (`UserId`, `DeptId`, `TimeStamp`) or the event-subscription style
(`userId`, `deptId`, `EventTime`, `eventId`); a `form` other than "legacy" means subscription.
Events carry ids only, as DingTalk's do. `signed_request` encrypts for the owner key of the
configured mode (app key for subscriptions, corp id for legacy) and signs as DingTalk does.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import orjson

from schemas.config import decode_aes_key
from schemas.types import CallbackMode
from schemas.vendors import crypto
from workers.simulator.directory import ROOT_ID, SimDepartment, SimulatedDirectory, SimUser
from workers.simulator.wecom import SignedRequest

__all__ = ["ROOT_ID", "DingTalkSimulator", "SimUser"]


@dataclass(kw_only=True)
class DingTalkSimulator(SimulatedDirectory):
    corp_id: str
    app_key: str
    app_secret: str
    token: str
    aes_key: str
    mode: CallbackMode = "subscription"
    vendor: ClassVar[str] = "dingtalk"
    # What a scenario may ask of this vendor: DingTalk has no disabled state and no id rename.
    supports_status: ClassVar[bool] = False
    supports_userid_rename: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._key = decode_aes_key(self.aes_key)
        self._last_ms = 0
        self._events = 0

    @property
    def owner_key(self) -> str:
        return self.app_key if self.mode == "subscription" else self.corp_id

    # ---- directory changes -> callback plaintext -----------------------------------------

    def create_department(self, name: str, parent_id: int, form: str = "") -> bytes:
        assert parent_id in self.departments
        new_id = self.new_department_id()
        self.departments[new_id] = SimDepartment(new_id, name, parent_id, new_id)
        return self._event("org_dept_create", "department", [new_id], form)

    def rename_department(self, department_id: int, name: str, form: str = "") -> bytes:
        self.departments[department_id] = replace(self.departments[department_id], name=name)
        return self._event("org_dept_modify", "department", [department_id], form)

    def move_department(self, department_id: int, parent_id: int, form: str = "") -> bytes:
        assert parent_id not in self.subtree(department_id), "would make a cycle"
        moved = replace(self.departments[department_id], parent_id=parent_id)
        self.departments[department_id] = moved
        return self._event("org_dept_modify", "department", [department_id], form)

    def delete_department(self, department_id: int, form: str = "") -> bytes:
        assert department_id != ROOT_ID
        assert self.is_empty(department_id)
        del self.departments[department_id]
        return self._event("org_dept_remove", "department", [department_id], form)

    def create_user(self, user: SimUser, form: str = "") -> bytes:
        assert user.userid not in self.users
        assert all(d in self.departments for d in user.departments)
        self.users[user.userid] = user
        self.departed.pop(user.userid, None)
        return self._event("user_add_org", "user", [user.userid], form)

    def update_user(self, userid: str, form: str = "", **changes: object) -> bytes:
        assert "status" not in changes, "DingTalk users have no disabled state"
        self.users[userid] = replace(self.users[userid], **changes)  # type: ignore[arg-type]
        return self._event("user_modify_org", "user", [userid], form)

    def delete_user(self, userid: str, form: str = "") -> bytes:
        self.departed[userid] = self.users.pop(userid)
        return self._event("user_leave_org", "user", [userid], form)

    def check_url(self) -> bytes:
        return b'{"EventType":"check_url"}'

    # ---- the wire ------------------------------------------------------------------------------

    def signed_request(self, plaintext: bytes, now: float | None = None) -> SignedRequest:
        """The POST DingTalk would send: ms timestamp, fresh nonce, encrypted and signed."""
        timestamp = str(int((time.time() if now is None else now) * 1000))
        nonce = secrets.token_hex(4)
        encrypt = crypto.encrypt(self._key, plaintext, self.owner_key)
        signature = crypto.signature(self.token, timestamp, nonce, encrypt)
        # DingTalk sends the signature under both names (docs/vendors.md §2.2).
        query = (
            f"msg_signature={signature}&timestamp={timestamp}&nonce={nonce}&signature={signature}"
        )
        return SignedRequest(query, orjson.dumps({"encrypt": encrypt}))

    def _event(self, event_type: str, entity: str, ids: list[Any], form: str) -> bytes:
        self._events += 1
        millis = self._millis()
        if form == "legacy" or (not form and self._events % 2):
            key = "UserId" if entity == "user" else "DeptId"
            fields: dict[str, object] = {
                "EventType": event_type,
                "TimeStamp": str(millis),
                "CorpId": self.corp_id,
                key: ids,
            }
            if entity == "user":
                fields["OptStaffId"] = "manager7318"
        else:
            key = "userId" if entity == "user" else "deptId"
            fields = {
                "EventType": event_type,
                "EventTime": millis,
                "CorpId": self.corp_id,
                "BizId": f"{millis}{self._events:04d}",
                "eventId": os.urandom(16).hex(),
                "timeStamp": str(millis),
                key: ids,
            }
        return orjson.dumps(fields)

    def _millis(self) -> int:
        """Strictly increasing, so two legacy callbacks never share a plaintext."""
        self._last_ms = max(int(time.time() * 1000), self._last_ms + 1)
        return self._last_ms
