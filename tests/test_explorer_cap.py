"""The explorer's cap on its kernels, in a real browser: a tab beyond it gets a page that says so.

Every tab of `python -m ncsn_toy explore` runs its own kernel of about 330 MB; with `--max-pages 1`
a second tab is refused with a page that names the limit, no kernel starts for it, and once the
first tab is closed (Voilà stops its kernel) the second one loads. Same browser and server setup
as test_explorer_browser.py.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from test_explorer_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    NUMBERS,
    PAGE_MS,
    START_S,
    STOP_S,
    command_line,
    descendants,
)

from ncsn_toy.commands.explore import free_port

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium` (Debian)",
)


def kernels(pid: int) -> list[int]:
    """The kernel processes below ``pid``."""
    return [p for p, command in descendants(pid).items() if command and b"ipykernel" in command]


@contextlib.contextmanager
def explore_with_one_page(log: Path):
    """`python -m ncsn_toy explore --max-pages 1`: yields the process and its address; stops it
    (and everything below it) on the way out."""
    port = free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ncsn_toy",
                "explore",
                "--no-browser",
                "--port",
                str(port),
                "--threads",
                "1",
                "--max-pages",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
    tree: dict[int, bytes] = {}
    try:
        deadline = time.monotonic() + START_S
        while "the explorer is at" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield process, f"http://127.0.0.1:{port}/"
    finally:
        tree.update(descendants(process.pid))
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pid, command in tree.items():
            if command is not None and command_line(pid) == command:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def wait_for_numbers(page) -> None:
    page.wait_for_function(
        f"() => document.querySelector('{NUMBERS}')?.innerText.startsWith('weights')",
        timeout=PAGE_MS,
    )


def test_a_tab_beyond_the_cap_gets_a_page_that_says_so(tmp_path):
    log = tmp_path / "server.log"
    with explore_with_one_page(log) as (process, server), sync_playwright() as playwright:
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
            assert second.reload(timeout=PAGE_MS).status == 200
            wait_for_numbers(second)
        finally:
            browser.close()
    assert "Traceback" not in log.read_text()
