"""Swagger UI at /api-docs, opened in headless Chromium with no internet: it renders every
operation from the app's own files, and "Try it out" calls the same server."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Api
from tests.support.browser import chromium


def wait_for(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return result


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def test_swagger_ui_lists_every_operation_and_executes_one(sqlite_api: Api, browser) -> None:
    from selenium.webdriver.common.by import By

    with sqlite_api.client() as c:
        document = c.get("/api-docs.json").json()
    expected = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert len(expected) > 30

    browser.get(f"{sqlite_api.base}/api-docs")
    blocks = wait_for(
        lambda: (
            len(found := browser.find_elements(By.CSS_SELECTOR, ".opblock")) >= len(expected)
            and found
        ),
        what="the operations to render",
    )
    shown = {
        (
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
        )
        for block in blocks
    }
    assert shown == expected
    assert "Sora2 API" in browser.find_element(By.CSS_SELECTOR, ".info .title").text

    health = browser.find_element(By.ID, "operations-Health-getHealth")
    health.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    wait_for(lambda: health.find_elements(By.CSS_SELECTOR, ".try-out__btn"), what="Try it out")
    health.find_element(By.CSS_SELECTOR, ".try-out__btn").click()
    wait_for(lambda: health.find_elements(By.CSS_SELECTOR, ".execute"), what="Execute")
    health.find_element(By.CSS_SELECTOR, ".execute").click()
    status = wait_for(
        lambda: health.find_elements(
            By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"
        ),
        what="the live response",
    )
    assert status[0].text.strip() == "200"
    assert '"ok"' in health.find_element(By.CSS_SELECTOR, ".live-responses-table").text
    assert f"{sqlite_api.base}/health" in health.find_element(By.CSS_SELECTOR, ".request-url").text

    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded and all(url.startswith(sqlite_api.base) for url in loaded), loaded
