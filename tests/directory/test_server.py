"""The directory server as its readers meet it: tokens per tenant, nothing of one tenant on
another's URL, read-only while provisioning is off, ETags, leavers, stable ids, discovery."""

from __future__ import annotations

import itertools

import pytest
from prometheus_client import REGISTRY

from schemas.record import encode_record
from tests.directory.conftest import BASE, TOKENS, Served, auth, deletion, department, user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_EXTENSION = "urn:ietf:params:scim:schemas:extension:orgstream:2.0:Group"
ENDPOINTS = [
    "Users", "Groups", "ServiceProviderConfig", "ResourceTypes", "ResourceTypes/User",
    "Schemas", f"Schemas/{ENTERPRISE}", "Users/{user}", "Groups/{group}", "nosuch",
]  # fmt: skip


async def ids(served: Served, tenant: str) -> tuple[str, str]:
    (one_user, *_) = await served.resources(tenant, "Users")
    (one_group, *_) = await served.resources(tenant, "Groups")
    return one_user["id"], one_group["id"]


async def test_without_the_tenants_own_token_every_endpoint_is_401(served: Served) -> None:
    user_id, group_id = await ids(served, "acme")
    wrong = [None, "Bearer wrong", f"Bearer {TOKENS['globex']}", f"Basic {TOKENS['acme']}",
             "Bearer", f"Bearer {TOKENS['acme']}x"]  # fmt: skip
    for endpoint, authorization in itertools.product(ENDPOINTS, wrong):
        path = endpoint.format(user=user_id, group=group_id)
        headers = {"Authorization": authorization} if authorization else {}
        response = await served.client.get(f"{BASE}/acme/{path}", headers=headers)
        assert response.status_code == 401, (path, authorization)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json()["status"] == "401"
        assert "zhang" not in response.text


async def test_an_unknown_tenant_and_a_closed_one_look_like_a_wrong_token(served: Served) -> None:
    answers = []
    for tenant in ("nosuch", "initech", "acme"):
        response = await served.client.get(
            f"{BASE}/{tenant}/Users", headers={"Authorization": "Bearer wrong"}
        )
        answers.append((response.status_code, response.json()["detail"]))
    assert len(set(answers)) == 1


async def test_tenant_a_never_sees_tenant_b(served: Served) -> None:
    """With acme's token, ask for globex's resources by id, filter and search on every
    endpoint: only acme's data ever comes back."""
    globex_user, globex_group = await ids(served, "globex")
    for kind, resource_id in (("Users", globex_user), ("Groups", globex_group)):
        response = await served.get("acme", f"{kind}/{resource_id}")
        assert response.status_code == 404
        assert await served.resources("acme", kind, filter=f'id eq "{resource_id}"') == []
    every_acme = await served.resources("acme", "Users") + await served.resources("acme", "Groups")
    text = str(every_acme)
    assert "globex" not in text
    assert "Hank" not in text
    assert "ding9" not in text
    assert await served.names("acme", "Users", filter='userName eq "hank"') == []
    searched = await served.client.post(
        f"{BASE}/acme/.search", json={"filter": "displayName pr"}, headers=auth("acme")
    )
    assert "Hank" not in searched.text
    assert "Globex" not in searched.text
    assert searched.json()["totalResults"] == 6 + 4
    # Every endpoint, with acme's token on acme's URL: nothing of globex's.
    user_id, group_id = await ids(served, "acme")
    for endpoint in ENDPOINTS:
        answer = await served.get("acme", endpoint.format(user=user_id, group=group_id))
        assert "Hank" not in answer.text
        assert "Globex" not in answer.text
        assert "ding9" not in answer.text
        assert globex_user not in answer.text
    # globex's own token on globex's URL sees globex.
    assert await served.names("globex", "Users") == ["hank"]


@pytest.mark.parametrize(
    ("method", "path"),
    list(itertools.product(["POST", "PUT", "PATCH", "DELETE"], ["Users", "Groups/x", "Users/x"])),
)
async def test_writes_are_refused_with_405_while_provisioning_is_off(
    served: Served, method: str, path: str
) -> None:
    response = await served.client.request(
        method, f"{BASE}/acme/{path}", json={"schemas": []}, headers=auth("acme")
    )
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/scim+json"
    assert "read-only" in response.json()["detail"]


async def test_etag_and_if_none_match(served: Served) -> None:
    (alice,) = await served.resources("acme", "Users", filter='userName eq "alice"')
    first = await served.get("acme", f"Users/{alice['id']}")
    tag = first.headers["ETag"]
    assert tag == alice["meta"]["version"]
    assert tag.startswith('W/"')
    unchanged = await served.client.get(
        f"{BASE}/acme/Users/{alice['id']}", headers={**auth("acme"), "If-None-Match": tag}
    )
    assert unchanged.status_code == 304
    await served.feed(user("acme", "alice", "Alice", (12,), version=9, title="Lead"))
    changed = await served.client.get(
        f"{BASE}/acme/Users/{alice['id']}", headers={**auth("acme"), "If-None-Match": tag}
    )
    assert changed.status_code == 200
    assert changed.json()["title"] == "Lead"
    assert changed.headers["ETag"] != tag


async def test_the_same_record_again_changes_nothing(served: Served) -> None:
    (bob,) = await served.resources("acme", "Users", filter='userName eq "bob"')
    await served.feed(user("acme", "bob", "Bob", (12, 9), version=7, email="bob@acme.example",
                           title="engineer"))  # fmt: skip
    (again,) = await served.resources("acme", "Users", filter='userName eq "bob"')
    assert again["meta"] == bob["meta"]


async def test_a_group_changes_when_its_members_do(served: Served) -> None:
    (sales,) = await served.resources("acme", "Groups", filter='displayName eq "Sales"')
    await served.feed(user("acme", "lisi", "Li Si", (7, 9), version=3, title="Manager"))
    (after,) = await served.resources("acme", "Groups", filter='displayName eq "Sales"')
    assert after["meta"]["version"] != sales["meta"]["version"]
    assert after["meta"]["lastModified"] > sales["meta"]["lastModified"]
    assert "Li Si" in {m["display"] for m in after["members"]}


async def test_a_leaver_is_inactive_in_no_group_then_gone_after_the_retention(
    served: Served,
) -> None:
    (zhao,) = await served.resources("acme", "Users", filter='userName eq "zhaoliu"')
    assert zhao["active"] is False
    assert "groups" not in zhao
    (sales,) = await served.resources("acme", "Groups", filter='displayName eq "Sales"')
    assert "Zhao Liu" not in {m["display"] for m in sales.get("members", [])}
    # The same index read with no retention left: the leaver is no longer served.
    from workers.directory.reader import DirectoryReader

    expired = DirectoryReader(served.index, leaver_days=0, max_results=50)
    found = await expired.get("acme", "User", zhao["id"], BASE)
    assert found is None
    assert await expired.get("acme", "User", (await ids(served, "acme"))[0], BASE) is not None


async def test_a_deleted_department_is_gone(served: Served) -> None:
    (platform,) = await served.resources("acme", "Groups", filter='displayName eq "Platform"')
    await served.feed(
        user("acme", "alice", "Alice", (7,), version=3),
        user("acme", "bob", "Bob", (9,), version=3),
        deletion("acme", "department", "12", 3),
    )
    assert (await served.get("acme", f"Groups/{platform['id']}")).status_code == 404
    assert "Platform" not in await served.names("acme", "Groups")


async def test_an_index_write_overtaken_by_a_newer_record_ends_with_the_newer(
    served: Served,
) -> None:
    """The mirror takes a deletion while an older record of the same department is still
    being indexed (the provisioning path and the feed both write): the index follows the
    mirror, not whichever write came last."""
    older = department("acme", 12, "Platform", 7, version=2)
    await served.mirror.apply(deletion("acme", "department", "12", 5),
                              encode_record(deletion("acme", "department", "12", 5)))  # fmt: skip
    await served.indexer.apply(older)  # the slow writer, finishing late

    assert "Platform" not in await served.names("acme", "Groups")


async def test_renames_and_moves_show_everywhere_they_are_shown(served: Served) -> None:
    await served.feed(department("acme", 7, "R&D", 1, order=2, version=2))
    (zhang,) = await served.resources("acme", "Users", filter='userName eq "zhangwei"')
    assert zhang[ENTERPRISE]["department"] == "R&D"
    await served.feed(department("acme", 7, "R&D", 9, order=2, version=3))  # under Sales
    (platform,) = await served.resources("acme", "Groups", filter='displayName eq "Platform"')
    assert platform[GROUP_EXTENSION]["path"] == "/1/9/7/12"


async def test_ids_survive_a_rebuild_of_the_index(served: Served) -> None:
    before = {u["userName"]: u["id"] for u in await served.resources("acme", "Users")}
    await served.index.forget("acme")
    await served.mirror.forget("acme")
    from tests.directory.conftest import ACME

    await served.feed(*ACME)
    after = {u["userName"]: u["id"] for u in await served.resources("acme", "Users")}
    assert after == before


async def test_discovery_documents(served: Served) -> None:
    config = (await served.get("acme", "ServiceProviderConfig")).json()
    assert config["filter"] == {"supported": True, "maxResults": 50}
    assert config["patch"]["supported"] is False
    assert config["etag"]["supported"] is True
    types = (await served.get("acme", "ResourceTypes")).json()["Resources"]
    assert {t["id"] for t in types} == {"User", "Group"}
    schemas = (await served.get("acme", "Schemas")).json()["Resources"]
    assert GROUP_EXTENSION in {s["id"] for s in schemas}
    group_extension = (await served.get("acme", f"Schemas/{GROUP_EXTENSION}")).json()
    assert {a["name"] for a in group_extension["attributes"]} == {
        "parentExternalId", "parentId", "path", "order"
    }  # fmt: skip


async def test_requests_are_counted_by_tenant_endpoint_and_status(served: Served) -> None:
    def count(tenant: str, endpoint: str, status: str) -> float:
        labels = {"tenant": tenant, "endpoint": endpoint, "status": status}
        return REGISTRY.get_sample_value("orgstream_directory_requests_total", labels) or 0.0

    before = count("acme", "Users/{id}", "404"), count("-", "Users", "401")
    await served.get("acme", "Users/nosuch")
    await served.client.get(f"{BASE}/nosuch/Users")
    assert (count("acme", "Users/{id}", "404"), count("-", "Users", "401")) == (
        before[0] + 1, before[1] + 1
    )  # fmt: skip


async def test_the_access_log_holds_no_token_and_no_query(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    await served.get("acme", "Users", filter='emails co "secret-address"')
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "directory_request" in logged
    assert TOKENS["acme"] not in logged
    assert "secret-address" not in logged


@pytest.mark.parametrize(
    "resource_id", ["nosuch", "%00", "a" * 300, "00000000-0000-0000-0000-000000000000"]
)
async def test_an_unknown_id_is_404_whatever_it_holds(served: Served, resource_id: str) -> None:
    response = await served.get("acme", f"Users/{resource_id}")
    assert response.status_code == 404
    assert response.json()["status"] == "404"


async def test_a_users_version_moves_when_only_its_groups_change(served: Served) -> None:
    (alice,) = await served.resources("acme", "Users", filter='userName eq "alice"')
    await served.feed(
        user("acme", "alice", "Alice", (12, 9), version=4, email="alice@other.example",
             telephone="010-1")
    )  # fmt: skip
    response = await served.client.get(
        f"{BASE}/acme/Users/{alice['id']}",
        headers={**auth("acme"), "If-None-Match": alice["meta"]["version"]},
    )
    assert response.status_code == 200
    assert {g["display"] for g in response.json()["groups"]} == {"Platform", "Sales"}
    since = f'meta.lastModified gt "{alice["meta"]["lastModified"]}"'
    assert "alice" in await served.names("acme", "Users", filter=since)


async def test_a_renamed_department_moves_the_version_of_everyone_showing_it(
    served: Served,
) -> None:
    (bob,) = await served.resources("acme", "Users", filter='userName eq "bob"')
    await served.feed(department("acme", 9, "Field Sales", 1, order=1, version=5))
    (after,) = await served.resources("acme", "Users", filter='userName eq "bob"')
    assert "Field Sales" in {g["display"] for g in after["groups"]}
    assert after["meta"]["version"] != bob["meta"]["version"]  # Sales is not his main one


async def test_a_parent_arriving_after_its_child_completes_the_childs_path(
    served: Served,
) -> None:
    await served.feed(department("acme", 50, "Late child", 40))
    (child,) = await served.resources("acme", "Groups", filter='displayName eq "Late child"')
    assert child[GROUP_EXTENSION]["path"] == "/40/50"
    await served.feed(department("acme", 40, "Late parent", 9))
    (child,) = await served.resources("acme", "Groups", filter='displayName eq "Late child"')
    assert child[GROUP_EXTENSION]["path"] == "/1/9/40/50"
