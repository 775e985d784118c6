"""The Directory pages: a tenant's departments from the mirror as a tree with their sizes,
search by name or id, a department's members, and a user's page (the record, the SCIM id on
the tenant's target and on the directory server, the last changes)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from schemas.config import TenantSettings
from schemas.record import NO_PARENT
from workers.apply.mapping import Namespace
from workers.console.page import Console
from workers.console.sessions import Session
from workers.directory.ids import user_id
from workers.store.history_pages import HistoryFilter
from workers.store.target_ledger import StoredLedger

SEARCH_LIMIT: Final = 50
MEMBERS_SHOWN: Final = 500


@dataclass(frozen=True)
class Branch:
    id: str
    name: str
    depth: int
    size: int


async def tree(request: Request, console: Console, session: Session) -> Response:
    tenant = _tenant(console, request.path_params.get("tenant"))
    if tenant is None:
        return console.render(request, "directory.html", session, tenant=None, branches=[],
                              found=None, query="")  # fmt: skip
    mirror = console.sources.mirror
    query = _printable(request.query_params.get("q") or "").strip()[:100]
    found = await mirror.search(tenant.id, query, SEARCH_LIMIT) if query else None
    outline = await mirror.outline(tenant.id)
    sizes = await mirror.department_sizes(tenant.id)
    return console.render(request, "directory.html", session, tenant=tenant.id, query=query,
                          found=found, branches=_tree(outline, sizes),
                          feed_on=console.sources.settings.feed.enabled)  # fmt: skip


async def department(request: Request, console: Console, session: Session) -> Response:
    tenant = _tenant(console, request.path_params["tenant"])
    if tenant is None:
        return console.refusal(request, session, 404, "No such tenant.")
    mirror = console.sources.mirror
    department = await mirror.department(tenant.id, _printable(request.path_params["department"]))
    if department is None:
        return console.refusal(request, session, 404, "No such department in the mirror.")
    members = await mirror.members(tenant.id, department.id)
    users = await mirror.users(tenant.id, members[:MEMBERS_SHOWN])
    shown = [
        (u, users[u].name, users[u].active) if u in users else (u, u, False)
        for u in members[:MEMBERS_SHOWN]
    ]
    parent = await mirror.department(tenant.id, department.parent_id)
    return console.render(request, "department.html", session, tenant=tenant.id,
                          department=department, parent=parent, members=shown,
                          total=len(members))  # fmt: skip


async def user(request: Request, console: Console, session: Session) -> Response:
    tenant = _tenant(console, request.path_params["tenant"])
    if tenant is None:
        return console.refusal(request, session, 404, "No such tenant.")
    sources = console.sources
    userid_asked = _printable(request.path_params["userid"])
    record = await sources.mirror.record(tenant.id, "user", userid_asked)
    if record is None:
        return console.refusal(request, session, 404, "No such user in the mirror.")
    userid = record.id
    names = {}
    for membership in record.user.departments if record.user else ():
        found = await sources.mirror.department(tenant.id, membership.department)
        names[membership.department] = found.name if found else membership.department
    target = sources.settings.scim_for(tenant).base_url
    external_id = Namespace(tenant.vendor, tenant.corp_id).user(userid)
    known = await StoredLedger(sources.ledgers, target).known(external_id)
    changes = await sources.history.page(
        HistoryFilter(tenant=tenant.id, entity_id=userid), None, 10
    )
    return console.render(request, "user.html", session, tenant=tenant.id, record=record,
                          user=record.user, department_names=names, target=target,
                          external_id=external_id, target_id=known.scim_id if known else None,
                          directory_id=user_id(tenant.id, userid), changes=changes)  # fmt: skip


def _printable(text: str) -> str:
    """What the store can hold and a person could have typed (no NUL, no control)."""
    return "".join(c for c in text if c.isprintable())[:256]


def _tenant(console: Console, tenant_id: str | None) -> TenantSettings | None:
    return console.sources.settings.tenant(tenant_id) if tenant_id else None


def _tree(outline: list[tuple[str, str, str]], sizes: dict[str, int]) -> list[Branch]:
    """Departments under their parents, depth first; one whose parent is not mirrored is a
    root of its own, so nothing is hidden."""
    known = {department_id for department_id, _, _ in outline}
    children: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for department_id, name, parent in outline:
        children[parent if parent in known else NO_PARENT].append((department_id, name))
    branches: list[Branch] = []
    stack = [(d, n, 0) for d, n in reversed(children[NO_PARENT])]
    while stack:
        department_id, name, depth = stack.pop()
        branches.append(Branch(department_id, name, depth, sizes.get(department_id, 0)))
        stack += [(d, n, depth + 1) for d, n in reversed(children[department_id])]
    return branches
