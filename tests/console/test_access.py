"""Who may see and do what: a login by token, two roles, CSRF on every action, tokens never
in a URL, a cookie or a page, and headers that keep the pages in their own frame."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from starlette.testclient import TestClient

from tests.console.conftest import OPERATOR_TOKEN, VIEWER_TOKEN, console_settings, log_in
from workers.console.app import create_console_app
from workers.store.audit import open_audit

PAGES = ("/", "/history", "/runs", "/charts", "/waiting", "/dead-letters", "/directory", "/audit")


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_a_login(console: TestClient, path: str) -> None:
    answer = console.get(path, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login"


def test_a_wrong_token_is_refused_and_a_right_one_opens_a_session(console: TestClient) -> None:
    refused = console.post("/login", data={"token": "not-a-console-token-at-all"})
    assert refused.status_code == 401
    assert "not one of the console" in refused.text
    assert "set-cookie" not in refused.headers

    accepted = console.post("/login", data={"token": VIEWER_TOKEN}, follow_redirects=False)
    assert accepted.status_code == 303
    cookie = accepted.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert VIEWER_TOKEN.lower() not in cookie  # the cookie names a session, not the token
    for path in PAGES:
        page = console.get(path)
        assert page.status_code == 200, path
        assert "vera (viewer)" in page.text
        assert VIEWER_TOKEN not in page.text
        assert OPERATOR_TOKEN not in page.text
        assert page.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in page.headers["content-security-policy"]


def test_a_viewer_cannot_act(console: TestClient, store_url: str) -> None:
    csrf = log_in(console, VIEWER_TOKEN)
    for action, form in (
        ("/waiting/approve", {"tenant": "acme"}),
        ("/dead-letters/redrive", {"all": "yes"}),
    ):
        answer = console.post(action, data={**form, "csrf": csrf})
        assert answer.status_code == 403, action
        assert "Only an operator" in answer.text
    assert asyncio.run(audited(store_url)) == []


def test_an_action_without_the_csrf_token_is_refused(console: TestClient, store_url: str) -> None:
    csrf = log_in(console, OPERATOR_TOKEN)
    for sent in ({}, {"csrf": "forged"}, {"csrf": csrf[:-1]}):
        answer = console.post(
            "/waiting/approve", data={"tenant": "acme", "listed": "0", "newest": "0", **sent}
        )
        assert answer.status_code == 403
        assert "CSRF" in answer.text
    assert asyncio.run(audited(store_url)) == []

    # With the token the action runs: here it finds nothing held, refuses, and says so.
    done = console.post("/waiting/approve", data={"tenant": "acme", "listed": "0", "csrf": csrf})
    assert done.status_code == 409
    assert asyncio.run(audited(store_url)) == [("otto", "approve-deletions", "acme")]


def test_logging_out_ends_the_session_but_not_from_another_site(console: TestClient) -> None:
    csrf = log_in(console, OPERATOR_TOKEN)
    cookie = dict(console.cookies)
    console.post("/logout", data={"csrf": "from-another-site"})
    assert console.get("/", follow_redirects=False).status_code == 200  # still logged in

    console.post("/logout", data={"csrf": csrf})
    assert console.get("/", follow_redirects=False).status_code == 303
    console.cookies.update(cookie)  # the old cookie, sent again: its session is over
    assert console.get("/", follow_redirects=False).headers["location"] == "/login"


def test_a_login_posted_from_another_site_is_refused(console: TestClient) -> None:
    answer = console.post("/login", data={"token": VIEWER_TOKEN},
                          headers={"Origin": "https://elsewhere.example"})  # fmt: skip
    assert answer.status_code == 403
    assert "set-cookie" not in answer.headers


def test_a_redrive_needs_a_choice_of_one_kind(console: TestClient, store_url: str) -> None:
    csrf = log_in(console, OPERATOR_TOKEN)
    for form in ({}, {"position": "0:1", "all": "yes"}, {"position": "../etc"}):
        answer = console.post("/dead-letters/redrive", data={**form, "csrf": csrf})
        assert answer.status_code == 400, form
    # Kafka is down: the re-drive fails with a 503, and the audit trail says so.
    failed = console.post("/dead-letters/redrive", data={"all": "yes", "csrf": csrf})
    assert failed.status_code == 503
    assert asyncio.run(audited(store_url)) == [("otto", "redrive", "all")]


def test_kafka_down_is_said_on_the_page_not_a_5xx(console: TestClient) -> None:
    log_in(console, VIEWER_TOKEN)
    for path in ("/", "/dead-letters"):
        page = console.get(path)
        assert page.status_code == 200
        assert "Kafka could not be reached" in page.text


async def audited(store_url: str) -> list[tuple[str, str, str]]:
    trail = open_audit(store_url)
    try:
        return [(a.who, a.action, a.target) for a in await trail.listed()]
    finally:
        await trail.aclose()


def test_behind_a_proxy_the_login_comes_from_the_public_origin(store_url: str) -> None:
    settings = console_settings(store_url)
    public = dataclasses.replace(settings.console, public_origin="https://console.example")
    app = create_console_app(dataclasses.replace(settings, console=public))
    with TestClient(app) as console:
        for origin, status in (("https://console.example", 303), ("http://testserver", 403)):
            answer = console.post("/login", data={"token": VIEWER_TOKEN},
                                  headers={"Origin": origin}, follow_redirects=False)  # fmt: skip
            assert answer.status_code == status, origin
