"""Constants and helpers shared by the UI tier's fixtures and tests."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fraud_orchestration.demo import MIN_DAYS_FOR_A_MODEL

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts" / "ui"
DOCS_IMAGES = REPO_ROOT / "docs" / "images"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps dialling out, and the closed network refuses it.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP_REASON = (
    f"the UI tier needs Debian's chromium at {CHROMIUM} "
    "(run scripts/install_chromium.sh; make test does)"
)

DEMO_START = "2018-04-01"
DEMO_DAYS = int(os.environ.get("FRAUD_UI_DEMO_DAYS", MIN_DAYS_FOR_A_MODEL))
"""The fewest days with which the demo trains (and deploys) a model."""
DEMO_WORLD = ["--customers", "600", "--terminals", "1200", "--seed", "0"]

DEMO_TIMEOUT = 2400
"""The demo takes a few minutes of CPU; on a shared two-core machine its wall time can be 4x."""
STARTUP_TIMEOUT = 300
"""``dagster dev`` until the code location is loaded and the daemon reports healthy."""
UI_TIMEOUT_MS = 90_000
"""Playwright's wait for any element or assertion: pages build slowly on a loaded machine."""

BIN = Path(sys.executable).parent


def wait_until(
    condition: Callable[[], Any], timeout: float, describe: str, interval: float = 1.0
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    value, last_error = poll(condition, timeout, interval)
    if value:
        return value
    detail = f" (last error: {last_error!r})" if last_error else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {describe}{detail}")


def poll(
    condition: Callable[[], Any], timeout: float, interval: float = 1.0
) -> tuple[Any, Exception | None]:
    """Poll ``condition`` for up to ``timeout`` seconds; its last value and the last error."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
        except (httpx.HTTPError, OSError) as error:  # the server is not answering yet
            value, last_error = None, error
        if value or time.monotonic() > deadline:
            return value, last_error
        time.sleep(interval)


@dataclass
class DagsterUI:
    base_url: str
    home: Path
    location: str = ""
    repository: str = ""

    def graphql(self, query: str, **variables: Any) -> dict:
        response = httpx.post(
            f"{self.base_url}/graphql",
            json={"query": query, "variables": variables},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def url(self, path: str) -> str:
        return self.base_url + path


def screenshot(page, name: str, **options) -> Path:
    """Save a screenshot of the page as a test artifact."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, **options)
    return path
