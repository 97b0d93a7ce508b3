"""The live lag page of `xbus monitor` in a real headless Chromium (Debian's, driven by Playwright).

The same two groups as test_monitor.py: the page must show both with their status colours, keep
updating, and leave a screenshot (test-output/lag-page.png under the repository, and the test's
tmp dir) for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import BrowserContext, ConsoleMessage, Error, async_playwright

from tests.conftest import ROOT, Stack
from tests.integration.test_monitor import USERS, TwoGroups, monitored_groups, settled, two_groups
from tests.support.api_under_test import api_under_test

pytestmark = pytest.mark.integration

#: Debian's chromium package: dev.py installs it (Playwright's own browser download is not used).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = ROOT / "test-output" / "lag-page.png"
#: What the page's CSS paints each status badge (computed style, as the browser reports it).
STATUS_COLOURS = {"OK": "rgb(46, 125, 50)", "STOP": "rgb(198, 40, 40)"}


@asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """Debian's chromium, headless, with a profile of the test's own."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `python3 dev.py test` installs Debian's chromium package"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch_persistent_context(
            tmp_path / "chromium-profile",
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def monitored(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[TwoGroups, str]]:
    async with monitored_groups(stack, tmp_path_factory.mktemp("monitor") / "monitor.log") as watched:
        yield watched


@pytest.mark.asyncio(loop_scope="module")
async def test_the_page_shows_every_group_in_its_status_colour_and_keeps_updating(
    monitored: tuple[TwoGroups, str], tmp_path: Path
) -> None:
    groups, url = monitored
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: `python3 dev.py test` installs Debian's chromium package"
    await settled(url, groups)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    def on_page_error(error: Error) -> None:
        problems.append(str(error))

    async with chromium(tmp_path) as browser:
        page = await browser.new_page()
        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        await page.goto(url)
        for name, status in ((groups.running, "OK"), (groups.stopped, "STOP")):
            await page.wait_for_selector(f'section.group[data-group="{name}"][data-status="{status}"]')
        shown = await page.eval_on_selector_all(
            "section.group", "nodes => nodes.map(node => [node.dataset.group, node.dataset.status])"
        )
        badges = await page.eval_on_selector_all(
            'section.group [data-role="status"]',
            "nodes => nodes.map(node => [node.textContent, getComputedStyle(node).backgroundColor])",
        )
        stopped = page.locator(f'section.group[data-group="{groups.stopped}"]')
        lag_shown = await stopped.get_attribute("data-lag")
        rows = await stopped.locator(f'tbody tr[data-topic="{groups.users_topic}"]').count()
        members_shown = await page.locator(f'section.group[data-group="{groups.running}"] li[data-member]').count()
        stamp = await page.get_attribute("#last-updated", "data-taken-at")
        points = await stopped.locator('[data-role="chart"]').get_attribute("data-points")
        await page.wait_for_function(
            """([stamp, points, group]) => {
                const chart = [...document.querySelectorAll("section.group")]
                    .find((node) => node.dataset.group === group).querySelector('[data-role="chart"]');
                return document.getElementById("last-updated").dataset.takenAt !== stamp
                    && chart.dataset.points !== points && chart.querySelector('polyline[data-series="lag"]');
            }""",
            arg=[stamp, points, groups.stopped],
        )
        error_banner_hidden = await page.locator("#error").is_hidden()
        await page.screenshot(path=tmp_path / "lag-page.png", full_page=True)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "lag-page.png", SCREENSHOT)

    assert dict(shown) == {groups.running: "OK", groups.stopped: "STOP"}
    assert sorted(badges) == sorted([["OK", STATUS_COLOURS["OK"]], ["STOP", STATUS_COLOURS["STOP"]]])
    assert lag_shown == str(USERS)
    assert rows == len(groups.published)
    assert members_shown >= 1
    assert error_banner_hidden
    assert not problems, problems


@pytest.mark.asyncio(loop_scope="module")
async def test_the_page_of_xbus_serve_shows_the_groups_with_the_token_given_in_its_address(
    stack: Stack, tmp_path: Path
) -> None:
    """Under `xbus serve` the data needs read:lag and a browser opening a page sends no header: the
    page is open, and sends the token its address fragment gives (then drops it from the address)."""
    async with two_groups(stack) as groups, api_under_test(groups.settings) as api:
        [(_, bearer)] = (await api.token("read:lag")).items()
        token = bearer.removeprefix("Bearer ")
        async with chromium(tmp_path) as browser:
            anonymous = await browser.new_page()
            await anonymous.goto(f"{api.url}lag")
            await anonymous.wait_for_selector("#error:not([hidden])")
            refused = await anonymous.locator("#error").text_content()
            await anonymous.close()
            page = await browser.new_page()
            await page.goto(f"{api.url}lag#token={token}")
            await page.wait_for_selector(f'section.group[data-group="{groups.running}"]', timeout=30_000)
            address = page.url
    assert "token" in (refused or "").lower()  # 401: the problem says a token is needed
    assert token not in address
