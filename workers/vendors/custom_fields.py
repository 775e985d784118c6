"""Each vendor's custom user fields, read into one shape: field name → text. They feed the
mappings and scopes of the SCIM targets (docs/mapping.md).

- WeCom `extattr.attrs[]`: `{name, type, text: {value}}` (type 0), `{web: {url, title}}` (1);
  a miniprogram field (2) has no text and is left out.
- DingTalk `extension`: a JSON object in a string, `{"工号": "A-1"}`.
- Feishu `custom_attrs[]`: `{id, type, value: {text | url | option_value …}}`, named by id
  (the user object does not carry the field's display name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson


def wecom_extattr(user: Mapping[str, Any]) -> dict[str, str]:
    extattr = user.get("extattr")
    attrs = extattr.get("attrs") if isinstance(extattr, dict) else None
    fields: dict[str, str] = {}
    for item in attrs if isinstance(attrs, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        text, web = item.get("text"), item.get("web")
        if isinstance(text, dict) and text.get("value") is not None:
            fields[item["name"]] = str(text["value"])
        elif isinstance(web, dict) and web.get("url") is not None:
            fields[item["name"]] = str(web["url"])
    return fields


def dingtalk_extension(user: Mapping[str, Any]) -> dict[str, str]:
    extension = user.get("extension")
    if not isinstance(extension, str) or not extension:
        return {}
    try:
        parsed = orjson.loads(extension)
    except orjson.JSONDecodeError:
        return {}  # not ours to repair; the other fields still sync
    if not isinstance(parsed, dict):
        return {}
    return {str(k): _text(v) for k, v in parsed.items() if v is not None}


def feishu_custom_attrs(user: Mapping[str, Any]) -> dict[str, str]:
    fields: dict[str, str] = {}
    attrs = user.get("custom_attrs")
    for item in attrs if isinstance(attrs, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        value = item.get("value")
        if not isinstance(value, dict):
            continue
        found = next(
            (value[k] for k in ("text", "url", "option_value", "name") if value.get(k)), None
        )
        if found is not None:
            fields[item["id"]] = _text(found)
    return fields


def _text(value: object) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()
