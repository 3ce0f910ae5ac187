"""Fixtures of the web app's tests: a real stack behind the API, and a real browser.

The stack is the one the API tests use (Redis, moto's S3 over HTTP,
``local_tts``, one Celery worker subprocess) with the API served by uvicorn on
``127.0.0.1:0`` (:class:`tests.api.server.ApiServer`).  The browser is the
system's Chromium (Debian's ``chromium`` package), driven by Playwright for
Python; Playwright's own browser downloads are never used.

Every page a test opens goes through :class:`Browser` (a fixture per test):
it records every request the page makes and, at the end, fails the test if one
went to a host other than the app or the storage it presigns downloads for,
if a page threw a script error, or if a form control had no accessible name.
Screenshots go to the session's artefact folder (:func:`artifacts`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser as PwBrowser
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from tests.api.server import ApiServer, api_settings
from tests.s3 import MotoS3
from tests.servers import LocalTTS
from tests.stack import Stack, Stacks
from worker.settings import TenantConfig

KEY = "web-test-key"
TENANT = "web"

#: Controls on the page without an accessible name (a label, aria-label or aria-labelledby).
UNLABELLED_JS = """
() => [...document.querySelectorAll('input, select, textarea, button, progress, meter, audio')]
  .filter(el => !el.hidden && el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML.slice(0, 120))
"""


@dataclass
class WebEnv:
    """The stack, the API in front of it, and the provider (for fault plans)."""

    stack: Stack
    api: ApiServer
    tts: LocalTTS
    s3: MotoS3


@pytest.fixture(scope="module")
def web_tts() -> Iterator[LocalTTS]:
    """A provider of this module's own, so its fault plans touch no other test."""
    with LocalTTS(engine="tone", rtf=0.02, ttfb_ms=20) as server:
        yield server


@pytest.fixture(scope="module")
def web(
    redis_url: str, web_tts: LocalTTS, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebEnv]:
    """The API on a stack with one worker, and one tenant whose key is :data:`KEY`."""
    tenant = TenantConfig(id=TENANT, key_sha256=[hashlib.sha256(KEY.encode()).hexdigest()])
    with (
        MotoS3() as s3,
        Stacks(redis_url, s3.endpoint_url, tmp_path_factory.mktemp("web")) as make,
    ):
        stack = make(web_tts, workers=1)
        with ApiServer(api_settings(stack, [tenant])) as api:
            yield WebEnv(stack, api, web_tts, s3)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$SHOAL_TEST_ARTIFACTS/web`` if set, else the session's tmp dir."""
    base = os.environ.get("SHOAL_TEST_ARTIFACTS")
    folder = Path(base) / "web" if base else tmp_path_factory.getbasetemp() / "web-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def chromium(web: WebEnv) -> Iterator[PwBrowser]:
    """Headless Chromium from the system (``chromium`` on PATH; tools/debian-packages.txt)."""
    executable = shutil.which("chromium")
    assert executable, "chromium is not installed: run tools/system-packages.sh"
    with sync_playwright() as pw:
        browser = _launch(pw, executable)
        yield browser
        browser.close()


def _launch(pw: Playwright, executable: str) -> PwBrowser:
    # Autoplay without a gesture, so a player can be checked to load; no sandbox as root.
    args = ["--autoplay-policy=no-user-gesture-required", "--no-sandbox"]
    return pw.chromium.launch(executable_path=executable, headless=True, args=args)


@dataclass
class Browser:
    """One browser tab on the app, with what it asked for and what went wrong."""

    env: WebEnv
    context: BrowserContext
    page: Page
    artifacts: Path
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.env.api.url

    def go(self, path: str) -> Page:
        """Open ``path`` of the app (its scripts loaded; what they fetch is awaited by
        the test's expectations, since a live event stream never lets the network idle)."""
        self.page.goto(self.base + path, wait_until="load")
        return self.page

    def sign_in(self, key: str = KEY, *, accepted: bool = True) -> None:
        """Sign in through the form, as a person would; if ``accepted``, wait for the job list."""
        self.go("/app/signin")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()
        if accepted:
            self.page.wait_for_url(f"{self.base}/app/jobs")

    def check_labels(self) -> None:
        """Remember controls of the current page that have no accessible name (the app's
        pages only: Swagger UI and ReDoc are other projects' pages)."""
        if not urlsplit(self.page.url).path.startswith("/app/"):
            return
        self.unlabelled += [
            f"{self.page.url}: {html}" for html in self.page.evaluate(UNLABELLED_JS)
        ]

    def shot(self, name: str, full_page: bool = True) -> Path:
        """A screenshot of the current page, as a test artefact."""
        self.check_labels()
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def foreign_requests(self) -> list[str]:
        """Requests to anything but the app itself and the storage it presigns URLs for."""
        own = {urlsplit(self.base).netloc, urlsplit(self.env.s3.endpoint_url).netloc}
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob"):
                continue
            if parts.netloc not in own or parts.hostname != "127.0.0.1":
                out.append(url)
        return out


@pytest.fixture
def browser(chromium: PwBrowser, web: WebEnv, artifacts: Path) -> Iterator[Browser]:
    """A fresh tab (own session storage); checked at the end for foreign hosts and errors."""
    context = chromium.new_context(viewport={"width": 1100, "height": 800})
    context.set_default_timeout(20_000)
    page = context.new_page()
    tab = Browser(web, context, page, artifacts)
    context.on("request", lambda request: tab.requests.append(request.url))
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    try:
        yield tab
    finally:
        context.close()
    assert tab.requests, "the browser made no request at all"
    assert tab.foreign_requests() == [], "a page reached outside the app"
    assert tab.errors == [], "a page threw a script error"
    assert tab.unlabelled == [], "a control has no accessible name"
