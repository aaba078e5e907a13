"""A real browser for the UI tests: Debian's Chromium (``make browser``), headless, driven by
Playwright (its own browser download is not used: this machine's Chromium is the one
installed from the distribution). Where it is missing the tests that need it skip, like the
Prometheus and OIP-client tests; CI sets LOOPLINE_TEST_REQUIRE_BROWSER=1 so they fail instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def chromium_path() -> str:
    """The system Chromium, or a skip (a failure under LOOPLINE_TEST_REQUIRE_BROWSER)."""
    found = shutil.which("chromium") or shutil.which("chromium-headless-shell")
    if found is None:
        why = "no Chromium on PATH (make browser installs Debian's chromium)"
        if os.environ.get("LOOPLINE_TEST_REQUIRE_BROWSER"):  # CI installed it: never skip
            pytest.fail(why)
        pytest.skip(why)
    return found


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser); closed on the way out."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        # --no-sandbox: tests run as root in a container, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def log_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Through the login form of Airflow's simple auth manager, as a person does."""
    page.goto(base_url)
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/" not in url, timeout=60_000)
