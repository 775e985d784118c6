"""The SCIM client's error mapping, through httpx.MockTransport: what is retried, what is not."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from workers.errors import ScimRejected, ScimUnavailable
from workers.scim import ScimTarget, filter_eq


def target_answering(*responses: httpx.Response) -> tuple[ScimTarget, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0) if len(queue) > 1 else queue[0]

    target = ScimTarget("http://scim.test/v2", "tkn", 5.0, transport=httpx.MockTransport(handle))
    return target, seen


async def test_429_honours_retry_after_then_succeeds() -> None:
    target, seen = target_answering(
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(200, json={"Resources": [{"id": "u1"}], "totalResults": 1}),
    )
    assert await target.find_one("Users", filter_eq("userName", "a")) == {"id": "u1"}
    assert len(seen) == 2
    assert seen[0].headers["authorization"] == "Bearer tkn"
    assert seen[0].headers["content-type"] == "application/scim+json"


async def test_persistent_5xx_becomes_scim_unavailable() -> None:
    target, seen = target_answering(httpx.Response(502))
    with pytest.raises(ScimUnavailable, match="HTTP 502"):
        await target.create("Users", {"userName": "a"})
    assert len(seen) == 4


async def test_retry_after_as_http_date_is_understood() -> None:
    soon = email.utils.formatdate(time.time() + 0.2, usegmt=True)
    target, _ = target_answering(
        httpx.Response(503, headers={"Retry-After": soon}), httpx.Response(204)
    )
    await target.patch("Groups", "g1", [{"op": "add", "path": "members", "value": []}])


async def test_data_error_is_rejected_with_its_scim_type_and_not_retried() -> None:
    body = {"status": "400", "scimType": "invalidValue", "detail": "bad userName"}
    target, seen = target_answering(httpx.Response(400, json=body))
    with pytest.raises(ScimRejected) as caught:
        await target.create("Users", {})
    assert (caught.value.status, caught.value.scim_type) == (400, "invalidValue")
    assert "bad userName" in str(caught.value)
    assert len(seen) == 1


async def test_delete_of_a_missing_resource_is_success() -> None:
    target, _ = target_answering(httpx.Response(404, json={"status": "404", "detail": "gone"}))
    await target.delete("Users", "nope")


async def test_two_matches_are_a_conflict_never_a_pick() -> None:
    listed = {"Resources": [{"id": "a"}, {"id": "b"}], "totalResults": 2}
    target, _ = target_answering(httpx.Response(200, json=listed))
    with pytest.raises(ScimRejected, match="matches several"):
        await target.find_one("Users", filter_eq("externalId", "x"))


def test_filter_values_are_quoted_and_escaped() -> None:
    assert filter_eq("userName", 'a"b\\c') == 'userName eq "a\\"b\\\\c"'
