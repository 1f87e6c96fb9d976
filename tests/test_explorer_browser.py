"""The explorer as a web page in a real browser: `python -m ncsn_toy explore` + headless Chromium.

Playwright drives the system's Chromium (Debian: `apt-get install chromium`); browsers downloaded
by Playwright itself are not used. Without /usr/bin/chromium the test is skipped, and only then.
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

from ncsn_toy.commands.explore import free_port

ROOT = Path(__file__).resolve().parents[1]
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
# Timeouts stop a hang, nothing else: the server answers in about 2 s, the page shows its first
# numbers in about 5 s and each update in well under 1 s on 2 cores; every limit below is far above
# that.
START_S = 180
STOP_S = 60  # Voilà stops its kernel in about 2 s
PAGE_MS = 180_000
UPDATE_MS = 120_000
NUMBERS = ".ncsn-numbers"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"no Chromium at {CHROMIUM}: install it with `apt-get install chromium` (Debian) "
    "to run the browser test (CI's .ci/run does)",
)


def command_line(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def descendants(pid: int) -> dict[int, bytes]:
    """Every process below ``pid`` with its command line (Linux /proc).

    Teardown uses it so that it leaves no process behind.
    """
    found = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            listing = Path(f"/proc/{parent}/task/{parent}/children").read_text()
        except OSError:
            continue
        children = [int(c) for c in listing.split()]
        found.update({child: command_line(child) for child in children})
        todo += children
    return found


@contextlib.contextmanager
def explore_server(log: Path, *options: str):
    """`python -m ncsn_toy explore --no-browser --port P [options]`: yields the process and its
    address.

    The address is the one the command prints. The process (and everything below it) is stopped
    on the way out, whatever happened.
    """
    port = free_port()
    # the kernel imports ncsn_toy from this checkout, whatever the environment has installed
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
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
                *options,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=environment,
            start_new_session=True,
            # Ctrl-C as in a terminal
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    tree: dict[int, bytes] = {}
    try:
        deadline = time.monotonic() + START_S
        while "the explorer is at" not in log.read_text():
            assert process.poll() is None, (
                f"explore exited with {process.returncode}:\n{log.read_text()}"
            )
            assert time.monotonic() < deadline, (
                f"explore printed no address in {START_S} s:\n{log.read_text()}"
            )
            time.sleep(0.2)
        tree = descendants(process.pid)  # Voilà and its kernels
        yield process, f"http://127.0.0.1:{port}/"
    finally:
        tree.update(descendants(process.pid))
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # stops Voilà as Ctrl-C does
            try:
                process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        # anything of ours still alive (it should not be) is killed
        for pid, command in tree.items():
            # the same process, not a reused pid
            if command is not None and command_line(pid) == command:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_the_page_answers_a_new_sampler_in_a_real_browser_and_ctrl_c_stops_it(tmp_path):
    log = tmp_path / "server.log"
    with explore_server(log) as (process, server):
        errors, external = browse(server, tmp_path / "explorer.png")
        below = descendants(process.pid)
        kernels = [pid for pid, command in below.items() if command and b"ipykernel" in command]
        assert len(kernels) == 1  # the page's
        environ = Path(f"/proc/{kernels[0]}/environ").read_bytes().split(b"\0")
        assert b"NCSN_TOY_THREADS=1" in environ  # --threads reaches the kernel's thread policy
        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(STOP_S) == 0
    assert "stopping the explorer" in log.read_text()
    assert "Traceback" not in log.read_text()
    # all stopped with it
    assert all(command_line(pid) != command for pid, command in below.items())
    assert errors == [], errors  # the page logged no error
    assert all("127.0.0.1" not in url for url in external)
    assert (tmp_path / "explorer.png").stat().st_size > 10_000


def browse(server: str, screenshot: Path) -> tuple[list[str], list[str]]:
    """Open the page, wait for numbers, drag the levels to 3, choose another sampler, then DDIM,
    and wait each time for new numbers and picture.

    Returns the errors the page logged and the addresses on other hosts it asked for.
    """
    errors = []
    external = []

    def record_console(message):
        if message.type == "error":
            errors.append(message.text)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=PAGE_MS
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", record_console)
            page.on("pageerror", lambda error: errors.append(f"page error: {error}"))

            # other hosts (Voilà links a CDN stylesheet it also bundles) get an empty answer
            def hermetic(route):
                if route.request.url.startswith(server):
                    route.continue_()
                else:
                    external.append(route.request.url)
                    route.fulfill(status=200, body="", content_type="text/css")

            page.route("**/*", hermetic)
            page.goto(server, timeout=PAGE_MS)
            numbers = page.locator(NUMBERS)
            picture = page.locator(".ncsn-picture")
            page.wait_for_function(
                f"() => document.querySelector('{NUMBERS}')?.innerText.startsWith('weights')",
                timeout=PAGE_MS,
            )
            first = numbers.inner_text()
            first_src = picture.get_attribute("src")
            first_pixels = picture.screenshot()
            # the paper's annealed Langevin, 10 levels x 100 steps
            assert "1000 score evaluations" in first

            # a pointer lands on whole pixels, give or take two: stops must be further apart
            assert drag_to_stop(page, "levels", 3) >= 5
            # 3 levels of the preset's 100 steps
            wait_for_numbers(page, " 300 score evaluations")
            levels = page.locator(".widget-slider:has(> label:text-is('levels'))")
            # the box beside the slider
            count = levels.locator("xpath=..").locator("input[type=number]")
            assert count.input_value() == "3"
            # the last frame of the new run: after its 300 steps
            assert page.locator(".ncsn-frame").inner_text() == "σ = 1, step 300"

            sampler = page.locator(".widget-dropdown:has(label:text-is('sampler')) select")
            eta_slider = page.locator(
                '.widget-slider:has(label:text-is("DDIM\'s eta")) .noUi-target'
            )
            assert eta_slider.get_attribute("disabled") == "true"
            # its preset: 100 levels, one step each
            sampler.select_option(label="consistent annealed sampling")
            wait_for_numbers(page, " 100 score evaluations")
            wait_for_new_picture(page, first_src)
            assert numbers.inner_text().startswith("weights")
            assert numbers.inner_text() != first
            assert picture.screenshot() != first_pixels
            assert page.locator(".ncsn-message").inner_text() == ""

            # DDIM's preset: 50 steps of DDPM's schedule, eta 0
            src = picture.get_attribute("src")
            sampler.select_option(label="DDIM")
            wait_for_numbers(page, " 50 score evaluations")
            wait_for_new_picture(page, src)
            assert numbers.inner_text().startswith("weights")
            assert page.locator(".ncsn-message").inner_text() == ""
            assert "VP coordinates" in page.locator(".ncsn-note").inner_text()
            # DDIM reads eta, which the other samplers grey out
            assert eta_slider.get_attribute("disabled") is None
            page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    return errors, external


def wait_for_numbers(page, words: str) -> None:
    """Until the line of numbers holds ``words``."""
    page.wait_for_function(
        f"words => document.querySelector('{NUMBERS}')?.innerText.includes(words)",
        arg=words,
        timeout=UPDATE_MS,
    )


def wait_for_new_picture(page, src: str) -> None:
    """Until the picture is another than ``src``."""
    page.wait_for_function(
        "src => document.querySelector('.ncsn-picture').src !== src", arg=src, timeout=UPDATE_MS
    )


def drag_to_stop(page, label: str, value: int) -> float:
    """Drag the handle of the slider ``label`` with the mouse to its stop for ``value``, as a
    hand would (to a whole pixel); returns the pixels between two stops.

    The slider's stops are 1, 2, 3, ... from the left end: stop ``value`` is at the fraction
    (value - 1) / (number of stops - 1) of the track.
    """
    slider = page.locator(f".widget-slider:has(> label:text-is('{label}'))")
    handle = slider.locator(".noUi-handle")
    track = slider.locator(".noUi-base").bounding_box()
    stops = int(float(handle.get_attribute("aria-valuemax"))) + 1
    spacing = track["width"] / (stops - 1)
    start = handle.bounding_box()
    y = round(start["y"] + start["height"] / 2)
    page.mouse.move(round(start["x"] + start["width"] / 2), y)
    page.mouse.down()
    page.mouse.move(round(track["x"] + spacing * (value - 1)), y, steps=10)
    page.mouse.up()
    return spacing
