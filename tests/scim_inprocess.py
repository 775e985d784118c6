"""scim2-server in-process (ASGI), with or without the orgstream Group extension loaded."""

from __future__ import annotations

import json
from functools import cache

import httpx
from scim2_models import ResourceType, Schema
from scim2_server.applications.asgi import ASGIApplication
from scim2_server.memory import AsyncInMemoryStorage
from scim2_server.service import ScimProvider  # type: ignore[attr-defined]
from scim2_server.utils import load_default_provider, load_default_service_provider_config

from tests.vectors import FIXTURES


@cache
def _provider(with_extension: bool, corp_user: bool = False) -> ScimProvider:
    """`corp_user`: the User extension of tests/fixtures/scim/schemas-with-corp-user.json
    (a company's own attributes, one of them read-only) instead of the Group extension."""
    if not with_extension and not corp_user:
        return load_default_provider()
    kind = "corp-user" if corp_user else "dept"
    schemas = json.loads((FIXTURES / "scim" / f"schemas-with-{kind}.json").read_text())
    types = json.loads((FIXTURES / "scim" / f"resource-types-with-{kind}.json").read_text())
    return ScimProvider.from_discovery(
        [Schema.model_validate(s) for s in schemas],
        [ResourceType.model_validate(t) for t in types],
        config=load_default_service_provider_config(),
    )


def scim_transport(with_extension: bool = False, corp_user: bool = False) -> httpx.ASGITransport:
    """A fresh, empty SCIM target served in-process."""
    app = ASGIApplication(AsyncInMemoryStorage(), _provider(with_extension, corp_user))
    return httpx.ASGITransport(app=app)  # type: ignore[arg-type]
