"""A SCIM User as an IdP writes it, mapped back to what the vendor keeps (docs/provisioning.md):
userName (or externalId) to the userid by the tenant's template, displayName (or the name's
parts) to the name, the mobile and the work email, title, the enterprise extension's manager to
the direct leader, `active` (a boolean, or Entra's "False") to enabled. What cannot be mapped
is a 400 naming the attribute. Departments are the Groups' business: a user keeps the ones it
has, and a new user starts in the root department, which both vendors require.
"""

from __future__ import annotations

import re
from typing import Any, Final

from schemas.record import UserState
from workers.provision.errors import ProvisionError, invalid
from workers.scim.target import ENTERPRISE_USER
from workers.vendors.writes import UserWrite

ROOT_DEPARTMENT: Final = "1"  # WeCom's and DingTalk's
_USERID: Final = re.compile(r"[A-Za-z0-9_@.\-]{1,64}")
# IdPs send numbers as people type them ("+86 138 0000 0001"); the vendors take digits, a
# leading + and dashes.
_MOBILE_PUNCTUATION: Final = re.compile(r"[\s()]")
Resource = dict[str, Any]


def userid_for(template: str, resource: Resource) -> str:
    """The userid a new user gets: `provisioning_userid` with the IdP's values put in."""
    user_name = _text(resource, "userName")
    if not user_name:
        raise invalid("userName", "required")
    values = {
        "{userName}": user_name,
        "{userName_local}": user_name.partition("@")[0],
        "{externalId}": _text(resource, "externalId"),
    }
    userid = template
    for placeholder, value in values.items():
        if placeholder in userid and not value:
            raise invalid(placeholder.strip("{}"), "required to make the userid")
        userid = userid.replace(placeholder, value)
    if not _USERID.fullmatch(userid):
        raise invalid(
            "userName", f"makes the userid {userid!r}: 1-64 letters, digits, or _ @ . - only"
        )
    return userid


def user_write(
    resource: Resource,
    userid: str,
    departments: tuple[str, ...],
    main_department: str | None,
    leader: str | None,
    needs_mobile: bool = False,
) -> UserWrite:
    """`leader`: the manager's userid, already looked up (None: no manager); `needs_mobile`:
    the vendor refuses a user without one (DingTalk)."""
    name = _text(resource, "displayName") or _formatted(resource.get("name"))
    if not name:
        name = _text(resource, "userName")
    if not name:
        raise invalid("displayName", "required (or name.formatted, or givenName and familyName)")
    if len(name) > 64:
        raise invalid("displayName", "at most 64 characters")
    kept = departments or (ROOT_DEPARTMENT,)
    mobile = _MOBILE_PUNCTUATION.sub(
        "", _pick(resource.get("phoneNumbers"), "mobile", "phoneNumbers")
    )
    if needs_mobile and not mobile:
        raise invalid("phoneNumbers", "this vendor needs a mobile number for every user")
    return UserWrite(
        userid=userid,
        name=name,
        departments=kept,
        main_department=main_department if main_department in kept else kept[0],
        mobile=mobile,
        email=_pick(resource.get("emails"), "work", "emails"),
        title=_text(resource, "title"),
        leaders=(leader,) if leader else (),
        active=active_of(resource.get("active", True)),
    )


def current_write(user: UserState) -> UserWrite:
    """What the vendor holds of a mirrored user, in the same terms."""
    departments = tuple(m.department for m in user.departments) or (ROOT_DEPARTMENT,)
    main = user.main_department if user.main_department in departments else departments[0]
    return UserWrite(
        userid=user.userid,
        name=user.name,
        departments=departments,
        main_department=main,
        mobile=user.texts.get("mobile", ""),
        email=user.texts.get("email", ""),
        title=user.texts.get("title", ""),
        leaders=user.direct_leaders[:1],
        active=user.active,
    )


def manager_id(resource: Resource) -> str | None:
    """The manager's SCIM id, as Entra and Okta send it: `{"value": id}` or a bare id."""
    extension = resource.get(ENTERPRISE_USER)
    manager = extension.get("manager") if isinstance(extension, dict) else None
    if isinstance(manager, dict):
        manager = manager.get("value")
    return str(manager) if manager else None


def active_of(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid("active", "true or false")


def idp_user_attributes(resource: Resource, served_user_name: str) -> Resource:
    """What the IdP wrote that the vendor cannot hold, served back as written."""
    # The IdP's externalId, or none: orgstream's own is not what the IdP reads back.
    kept: Resource = {"externalId": _text(resource, "externalId") or None}
    user_name = _text(resource, "userName")
    if user_name and user_name != served_user_name:
        kept["userName"] = user_name
    for attribute in ("emails", "phoneNumbers"):  # their types and primary, as written
        if isinstance(resource.get(attribute), list) and resource[attribute]:
            kept[attribute] = resource[attribute]
    name = resource.get("name")
    if isinstance(name, dict):
        parts = {k: v for k, v in name.items() if isinstance(v, str) and v}
        if parts:
            kept["name"] = parts
    return kept


def _pick(values: Any, preferred: str, attribute: str) -> str:
    """The value of the `preferred` type, else the primary one, else the first."""
    if values is None:
        return ""
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        raise invalid(attribute, "a list of objects with a value")
    ranked = sorted(
        values,
        key=lambda v: (str(v.get("type", "")).lower() != preferred, v.get("primary") is not True),
    )
    return str(ranked[0].get("value") or "") if ranked else ""


def _formatted(name: Any) -> str:
    if not isinstance(name, dict):
        return ""
    if name.get("formatted"):
        return str(name["formatted"])
    parts = [str(name[k]) for k in ("givenName", "familyName") if name.get(k)]
    return " ".join(parts)


def _text(resource: Resource, attribute: str) -> str:
    value = resource.get(attribute)
    if value is None:
        return ""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ProvisionError(400, f"{attribute}: must be a string", "invalidValue")
    return str(value).strip()
