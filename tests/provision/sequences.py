"""The IdPs' request sequences in tests/fixtures/provisioning/, replayed step by step against a
tenant's SCIM URL: each step's status (and a lookup's total) checked, the ids the server
answers with put in place of `{name}` in later steps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

FIXTURES = Path(__file__).parent.parent / "fixtures" / "provisioning"
Send = Callable[[str, str, Any], Awaitable[httpx.Response]]


async def replay(name: str, send: Send) -> dict[str, str]:
    """Run `<name>-sequence.json`; the ids it saved, by name."""
    steps = orjson.loads((FIXTURES / f"{name}-sequence.json").read_bytes())["steps"]
    saved: dict[str, str] = {}
    for number, step in enumerate(steps, 1):
        text = orjson.dumps({"path": step["path"], "body": step.get("body")}).decode()
        for key, value in saved.items():
            text = text.replace(f"{{{key}}}", value)
        filled = orjson.loads(text)
        answer = await send(step["method"], filled["path"], filled["body"])
        where = f"{name} step {number} ({step['method']} {step['path']})"
        assert answer.status_code == step["status"], f"{where}: {answer.text}"
        if "total" in step:
            assert answer.json()["totalResults"] == step["total"], where
        if "save" in step:
            saved[step["save"]] = answer.json()["id"]
    return saved
