"""The console in a real headless Chromium (Debian's, driven by Playwright) over a running
stack: log in, read the tenants and the lag `orgstream lag --json` reads, re-drive a dead
letter from its event's page, approve held deletions, see both in the audit trail; a viewer
cannot act, an action without its CSRF token is refused, and no page logs a browser error.
Each page is photographed; `make screenshots` keeps the photos in docs/console/."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from schemas.config import load_settings
from tests.console.test_directory_pages import mirrored
from tests.integration.conftest import Broker, Stack, make_stack, start_cli
from tests.integration.test_resilience import FAST_REDRIVE, eventually, json_lines, send, staff
from workers.dev import devstack
from workers.dev.harness import SCIM_TOKEN, wait_converged, wait_until_up
from workers.scim.target import CORE_USER, ScimTarget, filter_eq

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("ORGSTREAM_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("ORGSTREAM_SCREENSHOTS")  # where to keep the photos (make screenshots)
OPERATOR = "otto-operator-token-0123"
VIEWER = "vera-viewer-token-0123456"
GUARD = "[guard]\nmax_deletions = 1\nmax_deletion_percent = 100\n"


@pytest.fixture
async def console_stack(
    broker: Broker, scim_server: str, tmp_path: Path
) -> AsyncIterator[tuple[Stack, str]]:
    async for stack in make_stack(broker, scim_server, tmp_path, worker_toml=FAST_REDRIVE,
                                  extra_toml=GUARD):  # fmt: skip
        port = devstack.free_port()
        config = tmp_path / "console.toml"
        config.write_text(
            stack.config.read_text(encoding="utf-8")
            + f"\n[console]\nport = {port}\nsample_seconds = 1\n"
            + f'[[console.users]]\nname = "otto"\nrole = "operator"\ntoken = "{OPERATOR}"\n'
            + f'[[console.users]]\nname = "vera"\nrole = "viewer"\ntoken = "{VIEWER}"\n',
            encoding="utf-8",
        )
        process = start_cli("console", config, tmp_path / "console.log")
        try:
            url = f"http://127.0.0.1:{port}"
            await wait_until_up(f"{url}/healthz")
            yield stack, url
        finally:
            process.terminate()
            process.wait(15)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: `make browser` installs it"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM,
                                                    args=["--no-sandbox"])  # fmt: skip
        yield launched
        await launched.close()


class Visits:
    """Pages opened in one browser context, with every error the browser logged."""

    def __init__(self, context: BrowserContext, url: str) -> None:
        self.context, self.url, self.errors = context, url, list[str]()

    async def open(self, path: str, shot: str | None = None) -> Page:
        page = await self.context.new_page()
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        await page.goto(f"{self.url}{path}")
        if shot:
            await photograph(page, shot)
        return page


async def log_in(browser: Browser, url: str, token: str) -> Visits:
    visits = Visits(await browser.new_context(viewport={"width": 1280, "height": 800}), url)
    page = await visits.open("/login", "login")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/")
    return visits


async def photograph(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


async def test_an_operator_reads_the_stack_and_acts_and_a_viewer_cannot(
    console_stack: tuple[Stack, str], browser: Browser
) -> None:
    stack, url = console_stack
    sim = stack.sim
    target = ScimTarget(stack.scim_url, SCIM_TOKEN, 10.0)
    squatter = await target.create(
        "Users", {"schemas": [CORE_USER], "userName": "taken", "externalId": "ldap:taken"}
    )
    await send(
        stack, *(sim.create_user(staff(u), "full") for u in ("u1", "u2", "u3", "stay", "taken"))
    )
    await eventually(lambda: len(json_lines(stack, "dlq", "list")) == 1)
    (dead_letter,) = json_lines(stack, "dlq", "list")
    await send(stack, sim.delete_user("u1"), sim.delete_user("u2"), sim.delete_user("u3"))
    await eventually(lambda: len(json_lines(stack, "parked", "--state", "held")) == 2)

    operator = await log_in(browser, url, OPERATOR)

    # The lag the page shows is the lag the CLI measures: a paused worker leaves three events.
    worker = stack.processes[1]
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        await send(stack, *(sim.update_user("stay", "ids", position=f"P{i}") for i in range(3)))
        cli = json_lines(stack, "lag")[0]
        assert cli["total_lag"] == 3
        tenants = await operator.open("/")
        group = tenants.locator(f'section.lag[data-group="{cli["group"]}"]')
        assert await group.locator(".total-lag").inner_text() == str(cli["total_lag"])
        shown = {int(await row.get_attribute("data-partition") or -1):
                 int(await row.locator(".lag-value").inner_text())
                 for row in await group.locator("tr[data-partition]").all()}  # fmt: skip
        assert shown == {p["partition"]: p["lag"] for p in cli["partitions"]}
        row = tenants.locator('tr[data-tenant="acme"]')
        assert await row.count() == 1
        assert "needs-a-person" in (await row.get_attribute("class") or "")  # held, dead letter
    finally:
        os.kill(worker.pid, signal.SIGCONT)

    # A dead letter: its error on its event's page, re-driven from there once fixed.
    history = await operator.open("/history?outcome=dead_lettered", "history")
    await history.click("#history tbody a")
    await history.wait_for_selector("#error")
    assert "409 uniqueness" in await history.inner_text("#error")
    await photograph(history, "event")
    await operator.open("/dead-letters", "dead-letters")
    await target.delete("Users", squatter["id"])  # the cause, fixed
    await history.click("text=Re-drive this event")
    assert "1 dead letter(s) put back" in await history.inner_text("p.good")

    # Held deletions: the page lists exactly what approval deactivates; approval applies it.
    waiting = await operator.open("/waiting", "waiting")
    held = await waiting.inner_text("section.held")
    assert "2 deletion(s) held" in held
    await waiting.click("section.held button")
    assert "2 held deletion(s) released" in await waiting.inner_text("p.good")
    assert (await wait_converged(sim, stack.scim_url, timeout=30))[0] == []
    for userid in ("u1", "u2", "u3"):
        (user,) = await target.find("Users", filter_eq("userName", userid))
        assert user["active"] is False
    (taken,) = await target.find("Users", filter_eq("userName", "taken"))
    assert taken["externalId"] == "wecom:" + sim.corp_id + ":user:taken"  # the re-driven hire
    outcomes = [h["outcome"] for h in json_lines(stack, "history", "--entity-id", "taken")]
    assert outcomes == ["applied", "dead_lettered"]
    await target.aclose()

    audit = await operator.open("/audit", "audit")
    trail = [row.split("\t") for row in await audit.locator("#audit tbody tr").all_inner_texts()]
    assert [(r[1], r[2], r[3]) for r in trail] == [  # newest first
        ("otto", "approve-deletions", "acme"),
        ("otto", "redrive", dead_letter["position"]),
    ]
    assert "1 dead letter(s) put back" in trail[1][4]
    event = await operator.open("/history?outcome=dead_lettered")
    await event.click("#history tbody a")
    assert "by otto" in await event.inner_text("#redriven")
    # A dry run started from the Runs page, watched until it says what it would do.
    runs = await operator.open("/runs")
    await runs.click("#start button")
    await runs.wait_for_selector("#status", timeout=60_000)  # the page reloads until then
    assert await runs.inner_text("#status") == "succeeded"
    await photograph(runs, "run")
    await operator.open("/runs", "runs")

    # Freshness and the target's state come from the worker's own metrics.
    tenants = await operator.open("/", "tenants")
    acme = tenants.locator('tr[data-tenant="acme"]')
    assert re.fullmatch(r"[\d.]+ s / [\d.]+ s", await acme.locator(".freshness").inner_text())
    assert await acme.locator(".target").inner_text() == "ok"
    charts = await operator.open("/charts", "charts")
    assert await charts.locator("figure.chart polyline").count() >= 2  # lag and throughput
    await mirrored(load_settings(stack.config).store.url)  # a small tree, for its pages
    await operator.open("/directory/acme", "directory")
    await operator.open("/directory/acme/department/7", "directory-department")
    await operator.open("/directory/acme/user/zhangwei", "directory-user")
    await operator.open("/history?tenant=acme&entity_id=stay")

    # An action without the session's CSRF token is refused, even for an operator.
    refused = await operator.context.request.post(f"{url}/waiting/approve",
                                                  form={"tenant": "acme"})  # fmt: skip
    assert refused.status == 403

    # A viewer sees the buttons disabled, and a POST with a valid CSRF token is still refused.
    viewer = await log_in(browser, url, VIEWER)
    page = await viewer.open("/dead-letters")
    csrf = await page.locator('input[name="csrf"]').first.get_attribute("value")
    assert csrf
    forbidden = await viewer.context.request.post(
        f"{url}/dead-letters/redrive", form={"csrf": csrf, "all": "yes"}
    )
    assert forbidden.status == 403

    assert operator.errors == []
    assert viewer.errors == []
