"""The console in a real browser: Debian's chromium, headless, driven by Selenium through
chromium-driver (no browser download), against a real `earshot serve` started with the Python
SDK suite's helper."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk-python" / "tests"))

from server_process import REPO, Server, start_server, stop_server  # noqa: E402

#: Where the run leaves screenshots of the main pages (under target/, ignored by git).
SCREENSHOTS = REPO / "target" / "console-screenshots"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("earshot-console"))
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture()
def browser():
    from selenium import webdriver
    from selenium.common.exceptions import SessionNotCreatedException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--autoplay-policy=no-user-gesture-required", "--window-size=1280,900"]:
        options.add_argument(argument)

    def start() -> webdriver.Chrome:
        return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)

    try:
        driver = start()
    except SessionNotCreatedException as error:
        # Chromium can exit while it starts ("Chrome instance exited", once in a fresh clone's
        # run, 2026-12-05; the same suite passed three times after it): one more start tells
        # such a passing failure from a broken install, which fails again.
        print(f"chromium did not start, starting it again: {error.msg}", file=sys.stderr)
        driver = start()
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
