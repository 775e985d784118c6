"""A simulated Feishu company: the shared directory, and its contact v3 events as Feishu sends
them (docs/vendors.md §3): schema 2.0, the verification token in the header, encrypted with
the app's encrypt key and signed in the `X-Lark-*` headers (or plaintext, without one).

Department ids: the directory numbers departments; Feishu's `department_id` is `D<number>`
(not a number, as in real companies' custom ids) and its root is "0". `open_department_id` is
`od-` and a hash. Leaving the app's contact scope is a leaver to the app: `scope_out` moves
a user to the departed and sends `contact.scope.updated_v3`; `scope_in` brings one back.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import orjson

from schemas.vendors import feishu_crypto
from workers.simulator.directory import ROOT_ID, SimDepartment, SimulatedDirectory, SimUser
from workers.simulator.wecom import SignedRequest

__all__ = ["ROOT_ID", "FeishuSimulator", "SimUser", "department_id_of", "number_of"]

ROOT: str = "0"


def department_id_of(number: int) -> str:
    return ROOT if number == ROOT_ID else f"D{number}"


def number_of(department_id: str) -> int:
    """The directory's number of a Feishu department id (ValueError for anything else)."""
    if department_id == ROOT:
        return ROOT_ID
    if not department_id.startswith("D"):
        raise ValueError(f"not a simulated department id: {department_id!r}")
    return int(department_id[1:])


def open_department_id_of(number: int) -> str:
    return ROOT if number == ROOT_ID else "od-" + hashlib.md5(b"%d" % number).hexdigest()


@dataclass(kw_only=True)
class FeishuSimulator(SimulatedDirectory):
    app_id: str
    app_secret: str
    tenant_key: str
    verification_token: str
    encrypt_key: str | None
    vendor: ClassVar[str] = "feishu"
    supports_status: ClassVar[bool] = True  # a frozen account
    supports_userid_rename: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.scoped_out: set[str] = set()  # departed by leaving the app's scope

    def department_number(self, department_id: str) -> int:
        return number_of(department_id) if department_id else 0

    @property
    def corp_id(self) -> str:
        """What externalIds name the company by."""
        return self.tenant_key

    # ---- directory changes -> event plaintext -------------------------------------------

    def create_department(self, name: str, parent_id: int, form: str = "") -> bytes:
        assert parent_id in self.departments
        new_id = self.new_department_id()
        self.departments[new_id] = SimDepartment(new_id, name, parent_id, new_id)
        return self._event("contact.department.created_v3", {"object": self._department(new_id)})

    def rename_department(self, department_id: int, name: str, form: str = "") -> bytes:
        old = self.departments[department_id]
        self.departments[department_id] = replace(old, name=name)
        return self._department_updated(department_id, {"name": old.name})

    def move_department(self, department_id: int, parent_id: int, form: str = "") -> bytes:
        assert parent_id not in self.subtree(department_id), "would make a cycle"
        old = self.departments[department_id]
        self.departments[department_id] = replace(old, parent_id=parent_id)
        return self._department_updated(
            department_id, {"parent_department_id": department_id_of(old.parent_id)}
        )

    def delete_department(self, department_id: int, form: str = "") -> bytes:
        assert department_id != ROOT_ID
        assert self.is_empty(department_id)
        gone = self._department(department_id) | {"status": {"is_deleted": True}}
        del self.departments[department_id]
        old = {"status": {"is_deleted": False}, "open_department_id": gone["open_department_id"]}
        return self._event("contact.department.deleted_v3", {"object": gone, "old_object": old})

    def create_user(self, user: SimUser, form: str = "") -> bytes:
        assert user.userid not in self.users
        assert all(d in self.departments for d in user.departments)
        self.users[user.userid] = user
        self.departed.pop(user.userid, None)
        self.scoped_out.discard(user.userid)
        return self._event("contact.user.created_v3", {"object": self.user_object(user)})

    def update_user(self, userid: str, form: str = "", **changes: object) -> bytes:
        before = self.user_object(self.users[userid])
        self.users[userid] = replace(self.users[userid], **changes)  # type: ignore[arg-type]
        after = self.user_object(self.users[userid])
        old = {k: v for k, v in before.items() if after.get(k) != v}
        old["open_id"] = before["open_id"]
        return self._event("contact.user.updated_v3", {"object": after, "old_object": old})

    def delete_user(self, userid: str, form: str = "") -> bytes:
        user = self.users.pop(userid)
        self.departed[userid] = user
        obj = self.user_object(user) | {"department_ids": []}
        obj["status"] = {**obj["status"], "is_resigned": True, "is_activated": False}
        old = {
            "department_ids": self.user_object(user)["department_ids"],
            "open_id": obj["open_id"],
        }
        return self._event("contact.user.deleted_v3", {"object": obj, "old_object": old})

    def scope_out(self, userid: str) -> bytes:
        """The app may no longer see this user: to the app, a leaver."""
        user = self.users.pop(userid)
        self.departed[userid] = user
        self.scoped_out.add(userid)
        removed = {"users": [self._scope_user(user)], "departments": [], "user_groups": []}
        added: dict[str, list[Any]] = {"users": [], "departments": [], "user_groups": []}
        return self._event("contact.scope.updated_v3", {"added": added, "removed": removed})

    def scope_in(self, userid: str) -> bytes:
        """A user the app could not see is in its scope again."""
        user = self.departed.pop(userid)
        self.scoped_out.discard(userid)
        user = replace(
            user, departments=tuple(d for d in user.departments if d in self.departments)
        )
        if not user.departments:
            user = replace(user, departments=(ROOT_ID,), main_department=ROOT_ID)
        elif user.main_department not in user.departments:
            user = replace(user, main_department=user.departments[0])
        self.users[userid] = user
        added = {"users": [self._scope_user(user)], "departments": [], "user_groups": []}
        removed: dict[str, list[Any]] = {"users": [], "departments": [], "user_groups": []}
        return self._event("contact.scope.updated_v3", {"added": added, "removed": removed})

    # ---- the objects Feishu sends and serves ---------------------------------------------

    def user_object(self, user: SimUser) -> dict[str, Any]:
        departments = [
            user.main_department,
            *(d for d in user.departments if d != user.main_department),
        ]
        return {
            "open_id": "ou_" + hashlib.md5(user.userid.encode()).hexdigest(),
            "union_id": "on_" + hashlib.sha1(user.userid.encode()).hexdigest()[:32],
            "user_id": user.userid,
            "name": user.name,
            "email": user.email,
            "enterprise_email": "",
            "custom_attrs": [
                {"type": "TEXT", "id": name, "value": {"text": value}}
                for name, value in user.custom
            ],
            "job_title": user.position,
            "mobile": user.mobile,
            "status": {
                "is_frozen": user.status == 2,
                "is_resigned": False,
                "is_activated": True,
                "is_exited": False,
                "is_unjoin": False,
            },
            "department_ids": [department_id_of(d) for d in departments],
            "orders": [
                {
                    "department_id": department_id_of(d),
                    "user_order": 0,
                    "department_order": i,
                    "is_primary_dept": d == user.main_department,
                }
                for i, d in enumerate(departments)
            ],
            "employee_type": 1,
        }

    def department_object(self, number: int) -> dict[str, Any]:
        return self._department(number)

    def _department(self, number: int) -> dict[str, Any]:
        department = self.departments[number]
        return {
            "name": department.name,
            "parent_department_id": department_id_of(department.parent_id),
            "department_id": department_id_of(number),
            "open_department_id": open_department_id_of(number),
            "order": str(department.order),
            "status": {"is_deleted": False},
            "leaders": [],
        }

    def _scope_user(self, user: SimUser) -> dict[str, Any]:
        obj = self.user_object(user)
        return {k: obj[k] for k in ("union_id", "user_id", "open_id", "name", "department_ids")}

    def _department_updated(self, number: int, old: dict[str, Any]) -> bytes:
        obj = self._department(number)
        old = {**old, "open_department_id": obj["open_department_id"]}
        return self._event("contact.department.updated_v3", {"object": obj, "old_object": old})

    def _event(self, event_type: str, event: dict[str, Any]) -> bytes:
        header = {
            "event_id": secrets.token_hex(16),
            "token": self.verification_token,
            "create_time": str(int(time.time() * 1000)),
            "event_type": event_type,
            "tenant_key": self.tenant_key,
            "app_id": self.app_id,
        }
        return orjson.dumps({"schema": "2.0", "header": header, "event": event})

    # ---- the wire ----------------------------------------------------------------------

    def signed_request(self, plaintext: bytes, now: float | None = None) -> SignedRequest:
        """The POST Feishu would send: encrypted and signed with the encrypt key, or the
        plaintext event as it is without one."""
        if self.encrypt_key is None:
            return SignedRequest("", plaintext, (("Content-Type", "application/json"),))
        key = feishu_crypto.aes_key_of(self.encrypt_key)
        body = orjson.dumps({"encrypt": feishu_crypto.encrypt(key, plaintext)})
        timestamp = str(int(time.time() if now is None else now))
        nonce = secrets.token_hex(8)
        signature = feishu_crypto.signature(timestamp, nonce, self.encrypt_key, body)
        headers = (
            ("Content-Type", "application/json"),
            ("X-Lark-Request-Timestamp", timestamp),
            ("X-Lark-Request-Nonce", nonce),
            ("X-Lark-Signature", signature),
        )
        return SignedRequest("", body, headers)

    def url_verification(self, challenge: str) -> SignedRequest:
        plaintext = orjson.dumps(
            {"challenge": challenge, "token": self.verification_token, "type": "url_verification"}
        )
        if self.encrypt_key is None:
            return SignedRequest("", plaintext)
        key = feishu_crypto.aes_key_of(self.encrypt_key)
        return SignedRequest("", orjson.dumps({"encrypt": feishu_crypto.encrypt(key, plaintext)}))
