"""A SCIM target that reads for real and writes nothing: `orgstream replay --dry-run`.

The applier runs unchanged against it; each write it would have made is written down instead,
with its operations and values, for the per-entity plan the operator reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from workers.scim.target import Resource, ScimTarget


class PlanningTarget(ScimTarget):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.planned: list[str] = []

    def take_plan(self) -> list[str]:
        plan, self.planned = self.planned, []
        return plan

    async def create(self, kind: str, body: Resource) -> Resource:
        self.planned.append(f"POST /{kind} {_brief(body)}")
        # Later steps of the same plan refer to it by this stand-in id.
        return {**body, "id": f"(new {body.get('externalId', kind)})"}

    async def patch(
        self,
        kind: str,
        resource_id: str,
        operations: Sequence[Mapping[str, Any]],
        version: str | None = None,
    ) -> None:
        if operations:
            self.planned.append(f"PATCH /{kind}/{resource_id} {_brief(list(operations))}")

    async def delete(self, kind: str, resource_id: str) -> None:
        self.planned.append(f"DELETE /{kind}/{resource_id}")


def _brief(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 400 else text[:397] + "..."
