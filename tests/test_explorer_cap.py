"""The explorer's cap on its kernels, in a real browser: a tab beyond it gets a page that says so.

Every tab of `python -m ncsn_toy explore` runs its own kernel of about 330 MB; with `--max-pages 1`
a second tab is refused with a page that names the limit, no kernel starts for it, and once the
first tab is closed (Voilà stops its kernel) the second one loads. Same browser and server setup
as test_explorer_browser.py.
"""

import time

import pytest
from playwright.sync_api import sync_playwright
from test_explorer_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    NUMBERS,
    PAGE_MS,
    STOP_S,
    descendants,
    explore_server,
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium` (Debian)",
)


def kernels(pid: int) -> list[int]:
    """The kernel processes below ``pid``."""
    return [p for p, command in descendants(pid).items() if command and b"ipykernel" in command]


def wait_for_numbers(page) -> None:
    page.wait_for_function(
        f"() => document.querySelector('{NUMBERS}')?.innerText.startsWith('weights')",
        timeout=PAGE_MS,
    )


def test_a_tab_beyond_the_cap_gets_a_page_that_says_so(tmp_path):
    log = tmp_path / "server.log"
    with (
        explore_server(log, "--max-pages", "1") as (process, server),
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=PAGE_MS
        )
        try:
            # other hosts (a CDN stylesheet) get an empty answer, as in test_explorer_browser.py
            def hermetic(route):
                if route.request.url.startswith(server):
                    route.continue_()
                else:
                    route.fulfill(status=200, body="", content_type="text/css")

            context = browser.new_context()
            context.route("**/*", hermetic)
            first = context.new_page()
            first.goto(server, timeout=PAGE_MS)
            wait_for_numbers(first)
            assert len(kernels(process.pid)) == 1

            second = context.new_page()
            response = second.goto(server, timeout=PAGE_MS)
            assert response.status == 503
            text = second.locator("body").inner_text()
            assert "open in 1 tab(s) already, its limit" in text
            assert "Close one, then reload this page" in text
            assert len(kernels(process.pid)) == 1  # none started for the refused tab

            # closing the first tab stops its kernel, which frees the place
            first.close(run_before_unload=True)
            deadline = time.monotonic() + STOP_S
            while kernels(process.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert kernels(process.pid) == []
            # the kernel's process exits a moment before the server drops it from its list: the
            # place is free once the shutdown has returned, so reload until then (at most STOP_S)
            status = second.reload(timeout=PAGE_MS).status
            while status == 503 and time.monotonic() < deadline:
                time.sleep(0.5)
                status = second.reload(timeout=PAGE_MS).status
            assert status == 200
            wait_for_numbers(second)
        finally:
            browser.close()
    assert "Traceback" not in log.read_text()
