"""`pixray ui` end to end in headless Chromium (Debian's, driven by Playwright): the real command serves
the page with the shapes-world guides; a person's clicks make an image that forms frame by frame,
stop a second run, see a bad setting's message, and re-use a gallery picture's settings.

Set PIXRAY_UI_SCREENSHOT=path to keep a screenshot of the page as the first run's image forms (the
README's: docs/ui.png).
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from PIL import Image

CHROMIUM = (os.environ.get("PIXRAY_TEST_CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser"))
if CHROMIUM is None:
    pytest.skip("no Chromium to drive: install Debian's (apt-get install chromium; .ci/run does) or set "
                "PIXRAY_TEST_CHROMIUM to a Chromium binary", allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402

FIRST_PROMPT = "a green square on a yellow background"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`pixray ui --demo` on a free port of 127.0.0.1, writing under a temporary folder."""
    folder = tmp_path_factory.mktemp("ui")
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "pixray.cli", "ui", "--demo", "--port", str(port),
                                "--outdir", str(folder / "outputs" / "%SEQ%")], cwd=folder,
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    log: list[str] = []
    deadline = time.monotonic() + 120
    try:
        while not any(line.startswith("pixray ui: http") for line in log):
            assert process.poll() is None and time.monotonic() < deadline, "".join(log)
            with contextlib.suppress(queue.Empty):
                log.append(lines.get(timeout=1))
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()  # SIGTERM: as Ctrl-C
        assert process.wait(timeout=30) == 130
        time.sleep(0.5)
        while not lines.empty():
            log.append(lines.get())
        assert "pixray: stopped\n" in log, "".join(log)


def _status(page: Page) -> str:
    return page.inner_text("#pixray-status")


def _wait_for(page: Page, condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s; status: {_status(page)!r}"
        page.wait_for_timeout(100)


def _step_of(page: Page, total: int) -> int:
    """The step the page's run of ``total`` steps shows as done, or -1 where it shows none."""
    found = re.search(rf"step (\d+) of {total}\b", _status(page))
    return int(found.group(1)) if found else -1


def _frame_src(page: Page) -> str | None:
    images = page.locator("#canvas img")
    return images.first.get_attribute("src") if images.count() else None


def test_a_person_makes_an_image_stops_a_run_and_reuses_settings(server: str):
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})

        def only_this_machine(route) -> None:  # the page must work offline: nothing else is asked
            url = route.request.url
            if url.startswith(("http://127.0.0.1", "data:", "blob:")):
                route.continue_()
            else:
                outside.append(url)
                route.abort()

        page.route("**/*", only_this_machine)
        page.goto(server)
        page.wait_for_selector("#generate", timeout=60000)

        # A run: type a prompt, a short run with a frame every 2 steps, press Generate.
        page.fill("#field-prompts textarea", FIRST_PROMPT)
        page.fill("#field-iterations textarea", "16")
        advanced = page.locator("#field-advanced textarea")
        advanced.fill(advanced.input_value() + "display_every: 2\n")
        page.click("#generate")
        frames: list[str] = []
        deadline = time.monotonic() + 180
        while not _status(page).startswith("Done"):
            assert time.monotonic() < deadline and "Failed" not in _status(page), _status(page)
            src = _frame_src(page)
            if src and "Running" in _status(page) and src not in frames:
                frames.append(src)
                if len(frames) == 4 and os.environ.get("PIXRAY_UI_SCREENSHOT"):
                    page.evaluate("window.scrollTo(0, 0)")
                    page.screenshot(path=os.environ["PIXRAY_UI_SCREENSHOT"])
            page.wait_for_timeout(50)
        assert len(frames) >= 2, f"saw {len(frames)} intermediate frames replace each other"
        assert "Done: 16 steps" in _status(page)
        _wait_for(page, lambda: _frame_src(page) not in (None, frames[-1]), 10, "final image")
        # The new source is set at once; the picture loads from the server a moment later (longer
        # under load), so the check waits for it rather than reading it straight away.
        loaded = "img => img.complete && img.naturalWidth"
        _wait_for(page, lambda: page.eval_on_selector("#canvas img", loaded) == 64, 10,
                  "final image loaded at the shapes-world canvas's 64 pixels")
        downloads = page.locator("#downloads a[download]")
        _wait_for(page, lambda: downloads.count() == 3, 10, "downloads")
        assert [downloads.nth(i).get_attribute("download") for i in range(3)] == ["output.png", "output.svg",
                                                                                  "output.mp4"]
        png = page.request.get(downloads.first.get_attribute("href")).body()  # the file, with its metadata
        with Image.open(io.BytesIO(png)) as img:
            assert f"prompts: {FIRST_PROMPT}" in img.info["pixray_settings"]
        _wait_for(page, lambda: page.locator("#gallery img").count() >= 1, 10, "gallery picture")
        assert page.locator("#gallery").get_by_text(f"{FIRST_PROMPT} · seed").count() == 1

        # A longer run, iterations left blank (from quality: normal's 250), stopped: it ends after the
        # step under way and says where.
        page.fill("#field-prompts textarea", "a red circle on a blue background")
        page.fill("#field-iterations textarea", "")
        page.click("#generate")
        _wait_for(page, lambda: _step_of(page, 250) >= 3, 120, "third step")
        # Meanwhile someone else presses Generate: one run at a time, so theirs waits, its place shown.
        other = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        other.route("**/*", only_this_machine)
        other.goto(server)
        other.wait_for_selector("#generate", timeout=60000)
        # Theirs is 250 steps long too (the demo's 60 could all pass between two looks at the page
        # when the machine is loaded, and then there is nothing left to stop).
        other.fill("#field-iterations textarea", "")
        other.click("#generate")
        _wait_for(other, lambda: "queue: 1/1" in _status(other), 20, "queue position")
        page.click("#stop")
        _wait_for(page, lambda: _status(page).startswith("Stopped after step"), 20, "stop")
        stopped_at = int(re.match(r"Stopped after step (\d+), seed \d+ · ", _status(page)).group(1))
        assert 3 <= stopped_at < 100
        # Then theirs runs; they stop it too (Stop stops only one's own run).
        _wait_for(other, lambda: _step_of(other, 250) >= 1, 60, "the queued run")
        other.click("#stop")
        _wait_for(other, lambda: _status(other).startswith("Stopped after step"), 20, "the other stop")
        assert int(re.match(r"Stopped after step (\d+)", _status(other)).group(1)) < 250
        assert _status(page).startswith("Stopped after step")

        # Bad settings: each message by its field, nothing run, the page still there.
        advanced.fill(advanced.input_value() + "gif: maybe\n")
        page.click("#generate")
        _wait_for(page, lambda: page.locator("#error-advanced").is_visible(), 20, "advanced settings error")
        assert "setting 'gif': 'maybe' is not allowed" in page.inner_text("#error-advanced")
        assert "Not started" in _status(page)
        advanced.fill(advanced.input_value().replace("gif: maybe\n", ""))
        page.fill("#field-prompts textarea", "")
        page.click("#generate")
        _wait_for(page, lambda: page.locator("#error-prompts").is_visible(), 60, "prompts error")
        assert "setting 'prompts' is empty" in page.inner_text("#error-prompts")
        assert not page.locator("#error-advanced").is_visible()

        # The gallery: newest first; the first run's picture fills the form with its settings.
        _wait_for(page, lambda: page.locator("#gallery img").count() == 3, 10, "three gallery pictures")
        page.locator("#gallery button").filter(has=page.locator("img")).nth(2).click()
        page.click("#use-settings")
        _wait_for(page, lambda: page.input_value("#field-prompts textarea") == FIRST_PROMPT, 10,
                  "settings used")
        assert page.input_value("#field-iterations textarea") == "16"
        assert "display_every: 2" in advanced.input_value()
        browser.close()
    assert outside == []
