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
def _provider(with_extension: bool) -> ScimProvider:
    if not with_extension:
        return load_default_provider()
    schemas = json.loads((FIXTURES / "scim" / "schemas-with-dept.json").read_text())
    types = json.loads((FIXTURES / "scim" / "resource-types-with-dept.json").read_text())
    return ScimProvider.from_discovery(
        [Schema.model_validate(s) for s in schemas],
        [ResourceType.model_validate(t) for t in types],
        config=load_default_service_provider_config(),
    )


def scim_transport(with_extension: bool = False) -> httpx.ASGITransport:
    """A fresh, empty SCIM target served in-process."""
    app = ASGIApplication(AsyncInMemoryStorage(), _provider(with_extension))
    return httpx.ASGITransport(app=app)  # type: ignore[arg-type]
