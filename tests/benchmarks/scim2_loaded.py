"""scim2-server as its own process, its memory storage filled through its storage API with
the directory-server bench's directory (the baseline of bench 8).

    python -m tests.benchmarks.scim2_loaded PORT USERS DEPARTMENTS TOKEN
"""

from __future__ import annotations

import sys
from collections import defaultdict

import uvicorn
from scim2_models import Email, EnterpriseUser, Group, GroupMember, Name, User
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage, InMemoryStorage
from scim2_server.utils import load_default_provider

from tests.benchmarks.directory_data import departments, users


def filled(user_count: int, department_count: int) -> InMemoryStorage:
    provider = load_default_provider()
    storage = InMemoryStorage()
    types = {t.name: t for t in provider.resource_types}
    members: dict[str, list[GroupMember]] = defaultdict(list)
    for state in users(user_count, department_count):
        created = storage.create(
            types["User"],
            User[EnterpriseUser](
                user_name=state.userid,
                external_id=f"wecom:bench:user:{state.userid}",
                display_name=state.name,
                name=Name(formatted=state.name),
                active=state.active,
                title=state.texts.get("title"),
                emails=[Email(value=state.texts["email"], type=Email.Type.work, primary=True)],
            ),
        )
        for membership in state.departments:
            member = GroupMember(value=created.id, type="User", ref=None)
            members[membership.department].append(member)
    for department in departments(department_count):
        storage.create(
            types["Group"],
            Group(
                display_name=department.name,
                external_id=f"wecom:bench:dept:{department.id}",
                members=members[department.id] or None,
            ),
        )
    return storage


def main(port: str, user_count: str, department_count: str, token: str) -> None:
    storage = AsyncInMemoryStorage(filled(int(user_count), int(department_count)))
    app = ASGIApplication(storage, load_default_provider())

    async def with_token(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            if headers.get(b"authorization") != f"Bearer {token}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await app(scope, receive, send)

    print("ready", flush=True)
    uvicorn.run(with_token, host="127.0.0.1", port=int(port), log_level="warning")


if __name__ == "__main__":
    main(*sys.argv[1:])
