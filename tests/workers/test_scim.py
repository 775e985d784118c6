"""The SCIM client's error mapping, through httpx.MockTransport: what is retried, what is not."""

from __future__ import annotations

import contextlib
import email.utils
import time

import httpx
import orjson
import pytest

from workers.errors import ScimRejected, ScimUnavailable, TargetQuarantined
from workers.scim.target import ScimTarget, filter_eq


def target_answering(
    *responses: httpx.Response, max_results: int = 200
) -> tuple[ScimTarget, list[httpx.Request]]:
    """A target answering `responses` in turn (the last one forever); /ServiceProviderConfig
    is answered aside, with `filter.maxResults`, and not listed in the requests seen."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/ServiceProviderConfig"):
            return httpx.Response(
                200, json={"filter": {"supported": True, "maxResults": max_results}}
            )
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


async def test_queries_ask_for_no_more_than_the_target_allows() -> None:
    target, seen = target_answering(
        httpx.Response(200, json={"Resources": [], "totalResults": 0}), max_results=50
    )
    await target.find("Users", filter_eq("userName", "a"))
    assert seen[0].url.params["count"] == "50"


async def test_refused_credentials_quarantine_the_target_until_a_probe_succeeds() -> None:
    target, seen = target_answering(
        httpx.Response(401, json={"detail": "bad token"}),
        httpx.Response(200, json={"Resources": [], "totalResults": 0}),
    )
    with pytest.raises(TargetQuarantined, match="401"):
        await target.find("Users", filter_eq("userName", "a"))
    assert target.health.quarantined
    with pytest.raises(TargetQuarantined):  # no call while quarantined
        await target.find("Users", filter_eq("userName", "b"))
    assert len(seen) == 1
    assert await target.probe()
    assert not target.health.quarantined
    assert await target.find("Users", filter_eq("userName", "c")) == []


async def test_a_target_failing_most_calls_is_quarantined() -> None:
    target, seen = target_answering(httpx.Response(500, text="boom"))
    for _ in range(3):  # each call is tried 4 times
        with contextlib.suppress(ScimUnavailable):
            await target.find("Users", filter_eq("userName", "a"))
    assert target.health.quarantined
    assert "of the last" in (target.health.reason or "")
    before = len(seen)
    assert not await target.probe()  # still failing: stays quarantined
    assert target.health.quarantined
    assert len(seen) == before + 1


async def test_throttling_alone_never_quarantines() -> None:
    target, _ = target_answering(httpx.Response(429, headers={"Retry-After": "0"}))
    for _ in range(6):
        with contextlib.suppress(ScimUnavailable):
            await target.find("Users", filter_eq("userName", "a"))
    assert not target.health.quarantined


async def test_membership_diffs_go_in_chunks_of_at_most_100_operations() -> None:
    target, seen = target_answering(httpx.Response(204))
    add = [{"value": f"u{i}", "type": "User"} for i in range(180)]
    patches = await target.change_members("g1", add, [f"old{i}" for i in range(70)])
    assert patches == len(seen) == 3
    sizes = [len(orjson.loads(r.content)["Operations"]) for r in seen]
    assert sizes == [100, 100, 50]
    operations = [op for r in seen for op in orjson.loads(r.content)["Operations"]]
    assert sum(op["op"] == "remove" for op in operations) == 70
    assert {m["value"] for op in operations if op["op"] == "add" for m in op["value"]} == {
        f"u{i}" for i in range(180)
    }


@pytest.mark.parametrize("hostile", ["../Groups/g1", "u1?attributes=password", "u1#x", "a/b%2F"])
async def test_an_id_the_target_returned_stays_one_path_segment(hostile: str) -> None:
    """Ids come from the target: one that spells another path reaches no other resource."""
    target, seen = target_answering(httpx.Response(204))
    await target.patch("Users", hostile, [{"op": "replace", "path": "active", "value": False}])
    await target.delete("Users", hostile)
    for request in seen:
        prefix, _, segment = request.url.raw_path.decode().rpartition("/")
        assert prefix == "/v2/Users"
        assert request.url.query == b""
        assert httpx.URL(f"http://x/{segment}").path == f"/{hostile}"


@pytest.mark.parametrize("nothing", ["", ".", ".."])
async def test_an_id_that_is_no_path_segment_touches_nothing(nothing: str) -> None:
    """`..` would collapse onto the base URL, `.` onto the collection: refused, not sent."""
    target, seen = target_answering(httpx.Response(204))
    with pytest.raises(ScimRejected, match="unusable id"):
        await target.delete("Users", nothing)
    assert seen == []
