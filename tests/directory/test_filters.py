"""RFC 7644 filters, sorting, paging and projection on the directory server, as a reader would
use them: every operator, the logical operators and their precedence, complex attribute
filters, extension attributes, each attribute's case rule, and a 400 for what is malformed."""

from __future__ import annotations

import pytest

from tests.directory.conftest import Served, user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_EXTENSION = "urn:ietf:params:scim:schemas:extension:orgstream:2.0:Group"
EVERY_ACME_USER = {"zhangwei", "lisi", "wangwu", "alice", "bob", "zhaoliu"}


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ('userName eq "bob"', {"bob"}),
        ('title ne "Manager"', EVERY_ACME_USER - {"lisi"}),
        ('emails co "acme"', {"zhangwei", "lisi", "bob"}),
        ('userName sw "zhang"', {"zhangwei"}),
        ('emails.value ew ".example"', {"zhangwei", "lisi", "alice", "bob"}),
        ('userName gt "lisi"', {"wangwu", "zhangwei", "zhaoliu"}),
        ('userName ge "lisi"', {"lisi", "wangwu", "zhangwei", "zhaoliu"}),
        ('userName lt "bob"', {"alice"}),
        ('userName le "bob"', {"alice", "bob"}),
        ("title pr", {"zhangwei", "lisi", "wangwu", "bob"}),
        ("active eq false", {"wangwu", "zhaoliu"}),
        ('displayName eq "张伟"', {"zhangwei"}),
    ],
)
async def test_every_operator(served: Served, filter_: str, expected: set[str]) -> None:
    assert set(await served.names("acme", "Users", filter=filter_)) == expected


async def test_and_binds_tighter_than_or_and_parentheses_group(served: Served) -> None:
    # a or (b and c): bob is not a Manager, but alice matches on her own.
    loose = 'userName eq "alice" or title eq "engineer" and userName eq "zhangwei"'
    assert set(await served.names("acme", "Users", filter=loose)) == {"alice"}
    grouped = '(userName eq "alice" or title eq "engineer") and userName eq "bob"'
    assert set(await served.names("acme", "Users", filter=grouped)) == {"bob"}


async def test_filters_of_one_shape_keep_their_own_values(served: Served) -> None:
    """A filter's shape is parsed once and reused: each request still gets its own values,
    escapes included, and a value that looks like the parser's stand-in is taken as written."""
    for name in ("bob", "alice", "s0", "s1"):
        found = await served.names("acme", "Users", filter=f'userName eq "{name}"')
        assert found == ([] if name.startswith("s") else [name])
    either = r'userName eq "s1" or userName eq "b\u006fb"'  # the filter's own escape of "o"
    assert await served.names("acme", "Users", filter=either) == ["bob"]
    assert (
        await served.names("acme", "Users", filter='userName ne "bob" and userName eq "bob"') == []
    )


async def test_not_and_presence(served: Served) -> None:
    names = await served.names("acme", "Users", filter="not (emails pr) and active eq true")
    assert set(names) == set()
    names = await served.names("acme", "Users", filter="not (emails pr)")
    assert set(names) == {"wangwu", "zhaoliu"}


async def test_a_complex_filter_holds_on_one_element(served: Served) -> None:
    work_at_acme = 'emails[type eq "work" and value co "@acme."]'
    assert set(await served.names("acme", "Users", filter=work_at_acme)) == {
        "zhangwei", "lisi", "bob"
    }  # fmt: skip
    # zhangwei has a mobile number and a work number 010-2, but no mobile number 010-2.
    one_element = 'phoneNumbers[type eq "mobile" and value eq "010-2"]'
    assert await served.names("acme", "Users", filter=one_element) == []
    any_elements = 'phoneNumbers[type eq "mobile"] and phoneNumbers[value eq "010-2"]'
    assert await served.names("acme", "Users", filter=any_elements) == ["zhangwei"]
    work = await served.names("acme", "Users", filter='phoneNumbers[type eq "work"]')
    assert set(work) == {"alice", "zhangwei"}


async def test_extension_attributes(served: Served) -> None:
    department = f'{ENTERPRISE}:department eq "研发中心"'
    assert set(await served.names("acme", "Users", filter=department)) == {"zhangwei", "lisi"}
    (lisi,) = await served.resources("acme", "Users", filter='userName eq "lisi"')
    manager = f'{ENTERPRISE}:manager.value eq "{lisi["id"]}"'
    assert await served.names("acme", "Users", filter=manager) == ["zhangwei"]
    (rnd,) = await served.resources("acme", "Groups", filter='displayName eq "研发中心"')
    below = f'{GROUP_EXTENSION}:parentId eq "{rnd["id"]}"'
    assert await served.names("acme", "Groups", filter=below) == ["Platform"]
    subtree = f'{GROUP_EXTENSION}:path sw "/1/7"'
    assert set(await served.names("acme", "Groups", filter=subtree)) == {"研发中心", "Platform"}
    assert await served.names("acme", "Groups", filter=f"{GROUP_EXTENSION}:order gt 2") == [
        "Platform"
    ]


async def test_case_rules_follow_each_attribute(served: Served) -> None:
    # userName and emails are caseExact=false; externalId and ids are caseExact=true.
    assert await served.names("acme", "Users", filter='userName eq "BOB"') == ["bob"]
    assert await served.names("acme", "Users", filter='emails eq "lisi@acme.EXAMPLE"') == ["lisi"]
    exact = 'externalId eq "wecom:ww1:user:bob"'
    assert await served.names("acme", "Users", filter=exact) == ["bob"]
    assert await served.names("acme", "Users", filter=exact.upper().replace("EQ", "eq")) == []
    assert await served.names("acme", "Users", filter='externalId sw "WECOM:WW1:USER:B"') == []
    assert await served.names("acme", "Users", filter='externalId sw "wecom:ww1:user:b"') == ["bob"]
    assert await served.names("acme", "Users", filter='userName sw "BO"') == ["bob"]
    # Attribute names and operators are case-insensitive.
    assert await served.names("acme", "Users", filter='USERNAME EQ "bob"') == ["bob"]


async def test_group_members_and_a_users_groups(served: Served) -> None:
    (bob,) = await served.resources("acme", "Users", filter='userName eq "bob"')
    groups = await served.names("acme", "Groups", filter=f'members.value eq "{bob["id"]}"')
    assert set(groups) == {"Platform", "Sales"}
    assert {g["display"] for g in bob["groups"]} == {"Platform", "Sales"}
    (platform,) = await served.resources("acme", "Groups", filter='displayName eq "platform"')
    assert {m["display"] for m in platform["members"]} == {"Alice", "Bob"}


async def test_incremental_readers_filter_on_last_modified(served: Served) -> None:
    everyone = await served.resources("acme", "Users")
    latest = max(u["meta"]["lastModified"] for u in everyone)
    assert await served.names("acme", "Users", filter=f'meta.lastModified gt "{latest}"') == []
    await served.feed(user("acme", "alice", "Alice Liddell", (12,), version=5))
    changed = await served.names("acme", "Users", filter=f'meta.lastModified gt "{latest}"')
    assert changed == ["alice"]


async def test_paging_with_sorting(served: Served) -> None:
    pages = []
    for start in (1, 3, 5):
        response = await served.get(
            "acme", "Users", sortBy="userName", sortOrder="descending", startIndex=start, count=2
        )
        body = response.json()
        assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (6, start, 2)
        pages += [r["userName"] for r in body["Resources"]]
    assert pages == sorted(EVERY_ACME_USER, reverse=True)
    by_title = await served.names("acme", "Users", sortBy="title")
    # Without a title, last (RFC 7644 §3.4.2.3).
    assert by_title[:4] == ["bob", "lisi", "wangwu", "zhangwei"]
    assert set(by_title[4:]) == {"alice", "zhaoliu"}


async def test_count_is_capped_and_zero_counts_only(served: Served) -> None:
    body = (await served.get("acme", "Users", count=0)).json()
    assert (body["totalResults"], body["itemsPerPage"], body["Resources"]) == (6, 0, [])
    body = (await served.get("acme", "Users", count=10_000)).json()
    assert body["itemsPerPage"] == 6  # the fixture's server caps pages at 50


async def test_attributes_and_excluded_attributes(served: Served) -> None:
    (bob,) = await served.resources(
        "acme", "Users", filter='userName eq "bob"',
        attributes=f"userName,emails.value,{ENTERPRISE}:department",
    )  # fmt: skip
    assert set(bob) == {"id", "schemas", "userName", "emails", ENTERPRISE}
    assert bob["emails"] == [{"value": "bob@acme.example"}]
    (both,) = await served.resources(
        "acme", "Users", filter='userName eq "bob"', attributes="emails.value,emails.type"
    )
    assert both["emails"] == [{"value": "bob@acme.example", "type": "work"}]
    (typeless,) = await served.resources(
        "acme", "Users", filter='userName eq "bob"', excludedAttributes="emails.type"
    )
    assert typeless["emails"] == [{"value": "bob@acme.example", "primary": True}]
    assert bob[ENTERPRISE] == {"department": "Platform"}
    (trimmed,) = await served.resources(
        "acme", "Users", filter='userName eq "bob"', excludedAttributes="emails,groups,meta"
    )
    assert "emails" not in trimmed
    assert "groups" not in trimmed
    assert "meta" not in trimmed
    assert trimmed["userName"] == "bob"
    assert "id" in trimmed


async def test_search_with_post_takes_the_same_query(served: Served) -> None:
    response = await served.client.post(
        "http://directory.test/scim/v2/acme/Users/.search",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": "title pr and active eq true",
            "sortBy": "userName",
            "attributes": ["userName"],
            "count": 2,
        },
        headers={"Authorization": "Bearer acme-directory-token"},
    )
    body = response.json()
    assert body["totalResults"] == 3
    assert [r["userName"] for r in body["Resources"]] == ["bob", "lisi"]


@pytest.mark.parametrize(
    "filter_",
    [
        "userName eq",
        'userName xx "a"',
        '(userName eq "a"',
        'userName eq "unterminated',
        'nosuch eq "a"',
        "active gt true",
        'active eq "yes"',
        "title gt 3",
        'meta.lastModified gt "yesterday"',
        'emails[type eq "work"',
        'emails[primary co "x"]',
        'userName[value eq "x"]',
        'userName eq "nul\\u0000inside"',
        'userName eq "\\ud800"',
        'meta.created gt "0001-01-01T00:00:00+05:00"',
        "urn:ietf:params:scim:schemas:extension:orgstream:2.0:Group:order gt 1" + "0" * 400,
        " or ".join(f'userName eq "u{n}"' for n in range(201)),
    ],
)
async def test_malformed_filters_are_400_invalid_filter(served: Served, filter_: str) -> None:
    kind = "Groups" if "orgstream" in filter_ else "Users"
    response = await served.client.post(
        f"http://directory.test/scim/v2/acme/{kind}/.search",
        json={"filter": filter_},
        headers={"Authorization": "Bearer acme-directory-token"},
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["scimType"] == "invalidFilter"
    assert body["status"] == "400"
    assert body["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"startIndex": "x"},
        {"count": "many"},
        {"sortBy": "nosuch"},
        {"sortOrder": "sideways"},
        {"startIndex": "1e3"},
    ],
)
async def test_bad_parameters_are_400_invalid_value(served: Served, params: dict[str, str]) -> None:
    response = await served.get("acme", "Users", **params)
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"


async def test_a_start_past_every_integer_is_an_empty_page(served: Served) -> None:
    body = (await served.get("acme", "Users", startIndex=str(10**30))).json()
    assert body["Resources"] == []
    assert body["totalResults"] == 6


async def test_a_search_over_every_type_treats_a_missing_attribute_as_false(
    served: Served,
) -> None:
    async def search(filter_: str) -> set[str]:
        response = await served.client.post(
            "http://directory.test/scim/v2/acme/.search",
            json={"filter": filter_},
            headers={"Authorization": "Bearer acme-directory-token"},
        )
        assert response.status_code == 200, response.text
        return {r.get("userName", r.get("displayName")) for r in response.json()["Resources"]}

    assert await search('userName eq "bob" or displayName eq "Sales"') == {"bob", "Sales"}
    everything_but_bob = await search('not (userName eq "bob")')
    assert "bob" not in everything_but_bob
    assert {"Acme", "Sales", "Platform", "研发中心", "alice"} <= everything_but_bob
