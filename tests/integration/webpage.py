"""The web view in a real browser: Debian's headless Chromium driven by selenium (chromium-driver), no download.

`Page` opens /ui/ of a controller, waits on conditions of what the page shows, and keeps the browser console: every
warning or error it logs fails the test, but those the test provokes on purpose (`expect_console`).
Screenshots go to ARTIFACTS (git-ignored), one per test and step.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

ARTIFACTS = Path(os.environ.get("SDN_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts")) / "web-ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
T = TypeVar("T")


def chromium() -> webdriver.Chrome:
    """Headless Chromium from Debian's packages, with its console log kept."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Page:
    """One browser tab on a controller's web view."""

    def __init__(self, driver: webdriver.Chrome, name: str, root: str = "") -> None:
        self.driver = driver
        self.root = root  # the controller's base URL, http://host:port
        self.name = re.sub(r"[^\w.-]+", "_", name)
        self.console: list[dict[str, Any]] = []
        self.expected: list[str] = []
        self.shots: list[Path] = []

    def open(self, view: str = "topology") -> None:
        """Load the web view at page `view` of its nav (#/view)."""
        self.driver.get(f"{self.root}/ui/#/{view}")

    def go(self, view: str) -> None:
        """Another page of the view, without reloading (what clicking the nav does)."""
        self.driver.execute_script("location.hash = arguments[0]", f"#/{view}")

    def wait(self, condition: Callable[[], T], timeout: float, what: str) -> T:
        """The first true value of `condition` (retried on elements replaced by a re-render), or fail naming `what`."""
        def probe(_driver: Any) -> T | bool:
            try:
                return condition()
            except StaleElementReferenceException:
                return False
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(probe)
        except TimeoutException:
            self.screenshot("timeout")
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; page shows:\n"
                                 f"{self.text('main')[:3000]}") from None

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def one(self, css: str) -> WebElement | None:
        found = self.all(css)
        return found[0] if found else None

    def text(self, css: str) -> str:
        found = self.one(css)
        return found.text if found else ""

    def screenshot(self, step: str) -> Path:
        """The whole page, below the fold too, as ARTIFACTS/<test>-<n>-<step>.png."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{len(self.shots):02d}-{step}.png"
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
        self.shots.append(path)
        return path

    def expect_console(self, fragment: str) -> None:
        """A console message containing `fragment` is one the test provoked (a request the API refuses)."""
        self.expected.append(fragment)

    def console_problems(self) -> list[str]:
        """Warnings and errors the console logged, but those expected."""
        self.console += self.driver.get_log("browser")
        return [entry["message"] for entry in self.console if entry["level"] in ("WARNING", "SEVERE")
                and not any(fragment in entry["message"] for fragment in self.expected)]
