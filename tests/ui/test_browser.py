"""The status page in a real browser: Debian's chromium, headless, driven by chromium-driver.

Logs in (a wrong password first gets nothing), watches a throttled transfer's counters move,
raises its rate from the page and sees the speed follow, then cancels it from the page; a
finished execution's failed files are listed under "Recent"; a split execution is suspended from
the page (its bytes stop moving while the page keeps polling), resumed, one of its work items
suspended and resumed from the expanded item list, and it ends SUCCESS.
`DSL_UI_SCREENSHOT=path.png` saves a screenshot of the running page (never committed), and
`DSL_UI_SCREENSHOT_FAILED` / `DSL_UI_SCREENSHOT_SUSPENDED` of the failed files / a suspension.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.api.harness import (
    ACCESS_KEY,
    SECRET_KEY,
    Server,
    finished,
    make_tree,
    nfs_task,
    wait_for,
)
from tests.ui.failing import failing_files

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SLOW, FAST = 32 * 1024, 512 * 1024  # bytes per second before and after the page's change

pytestmark = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(DRIVER)),
    reason="Debian chromium + chromium-driver are not installed (make installs them)",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.add_argument("--window-size=1400,900")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def log_in(browser: Any, server: Server, secret: str) -> None:
    browser.get(f"{server.url}/ui")  # no session: sent to the login form
    browser.find_element(By.ID, "access_key_id").send_keys(ACCESS_KEY)
    browser.find_element(By.ID, "secret_access_key").send_keys(secret)
    browser.find_element(By.ID, "login").click()


def cell(browser: Any, arn: str, role: str) -> Any:
    rows = browser.find_elements(By.CSS_SELECTOR, f'#running tr[data-arn="{arn}"]')
    return rows[0].find_element(By.CSS_SELECTOR, f'[data-role="{role}"]') if rows else None


def value(browser: Any, arn: str, role: str) -> float | None:
    found = cell(browser, arn, role)
    text = found.get_attribute("data-value") if found is not None else None
    return float(text) if text else None


def test_watch_rate_change_and_cancel(browser: Any, server: Server, root: Path) -> None:
    log_in(browser, server, "not-the-secret")
    error = wait_for(lambda: browser.find_elements(By.ID, "login-error"))
    assert error[0].text == "Wrong access key pair."
    assert browser.get_cookies() == []
    browser.get(f"{server.url}/ui/state.json")
    assert "Log in first" in browser.page_source and '"running"' not in browser.page_source

    make_tree(os.fspath(root / "src"), 8, 256 * 1024)
    ds = server.client()
    _, _, task = nfs_task(
        ds, server.agent_arn, root / "src", root / "dst", Options={"BytesPerSecond": SLOW}
    )
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    log_in(browser, server, SECRET_KEY)
    wait_for(lambda: browser.current_url.endswith("/ui"))
    assert SECRET_KEY not in browser.page_source

    first = wait_for(lambda: value(browser, arn, "bytes"), 30)
    wait_for(lambda: (value(browser, arn, "bytes") or 0) > first, 30)  # counters move
    wait_for(lambda: value(browser, arn, "speed") is not None, 30)
    assert wait_for(lambda: cell(browser, arn, "status")).text == "TRANSFERRING"

    rate = cell(browser, arn, "rate-input")
    rate.clear()
    rate.send_keys(str(FAST))
    cell(browser, arn, "set-rate").click()
    wait_for(
        lambda: (
            ds.describe_task_execution(TaskExecutionArn=arn)["Options"]["BytesPerSecond"] == FAST
        )
    )
    # the page's speed (bytes over its last polls) follows the new limit well past the old one
    wait_for(lambda: (value(browser, arn, "speed") or 0) > 3 * SLOW, 30)
    if os.environ.get("DSL_UI_SCREENSHOT"):
        browser.save_screenshot(os.environ["DSL_UI_SCREENSHOT"])

    cell(browser, arn, "cancel").click()
    wait_for(lambda: ds.describe_task_execution(TaskExecutionArn=arn)["Status"] == "ERROR", 30)
    recent = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'#recent tr[data-arn="{arn}"]'), 30
    )
    assert recent[0].find_element(By.CSS_SELECTOR, '[data-role="status"]').text == "ERROR"


def test_recent_executions_show_their_failed_files(
    browser: Any, server: Server, root: Path
) -> None:
    with failing_files(root, ["locked.txt"]) as failing:
        ds = server.client()
        _, _, task = nfs_task(
            ds, server.agent_arn, root / "src", root / "dst", Options={"LogLevel": "BASIC"}
        )
        arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
        assert finished(ds, arn)["Status"] == "ERROR"
    log_in(browser, server, SECRET_KEY)
    wait_for(lambda: browser.current_url.endswith("/ui"))
    row = f'#recent tr[data-arn="{arn}"]'
    items = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'{row} [data-role="failed-file"]'), 30
    )
    assert len(items) == 1
    assert failing[0] in items[0].text and "Operation not permitted" in items[0].text
    count = browser.find_element(By.CSS_SELECTOR, f'{row} [data-role="failed-count"]')
    assert count.text == "1"
    if os.environ.get("DSL_UI_SCREENSHOT_FAILED"):
        browser.save_screenshot(os.environ["DSL_UI_SCREENSHOT_FAILED"])


def item_cell(browser: Any, arn: str, index: int, role: str) -> Any:
    found = browser.find_elements(
        By.CSS_SELECTOR,
        f'#running tr[data-items-of="{arn}"] tr[data-item="{index}"] [data-role="{role}"]',
    )
    return found[0] if found else None


def summary(browser: Any, arn: str, name: str) -> int | None:
    """An attribute of the row's work-item summary: data-value (SUSPENDED items), data-running."""
    found = cell(browser, arn, "items-summary")
    text = found.get_attribute(name) if found is not None else None
    return int(text) if text else None


def test_suspend_and_resume_from_the_page(browser: Any, server: Server, root: Path) -> None:
    for name in ("a", "b", "c"):
        make_tree(os.fspath(root / "src" / name), 1, 512 * 1024, prefix=name)
    ds = server.client()
    _, _, task = nfs_task(
        ds,
        server.agent_arn,
        root / "src",
        root / "dst",
        Options={"BytesPerSecond": 64 * 1024, "VerifyMode": "NONE"},
    )
    arn = ds.start_task_execution(TaskArn=task)["TaskExecutionArn"]
    log_in(browser, server, SECRET_KEY)
    wait_for(lambda: browser.current_url.endswith("/ui"))

    # the item list: collapsed until opened, then the plan's three directories
    toggle = wait_for(
        lambda: (
            (t := cell_of_items(browser, arn, "items-toggle")) is not None and "(4)" in t.text and t
        ),
        30,
    )
    assert item_cell(browser, arn, 1, "item-path").is_displayed() is False
    toggle.click()
    paths = wait_for(
        lambda: sorted(item_cell(browser, arn, i, "item-path").text for i in (1, 2, 3)), 10
    )
    assert paths == ["a/", "b/", "c/"]
    wait_for(lambda: (value(browser, arn, "bytes") or 0) > 0, 30)

    # Suspend: every item stops, the bytes stop moving while the page keeps polling
    cell(browser, arn, "suspend").click()
    wait_for(lambda: (summary(browser, arn, "data-value") or 0) >= 1, 20)
    wait_for(lambda: summary(browser, arn, "data-running") == 0, 20)
    assert "SUSPENDED" in cell(browser, arn, "items-summary").text
    assert cell(browser, arn, "status").text == "TRANSFERRING"  # the phase stays
    frozen = value(browser, arn, "bytes")
    updated = browser.find_element(By.ID, "updated").text
    time.sleep(2.2)
    assert browser.find_element(By.ID, "updated").text != updated  # still polling
    assert value(browser, arn, "bytes") == frozen  # and nothing moved
    assert cell(browser, arn, "eta").text == "suspended"
    assert value(browser, arn, "speed") == 0
    assert frozen is not None and frozen < 3 * 512 * 1024
    assert cell(browser, arn, "resume").is_enabled()
    assert not cell(browser, arn, "suspend").is_enabled()
    assert not browser.find_element(By.ID, "message").is_displayed()
    if os.environ.get("DSL_UI_SCREENSHOT_SUSPENDED"):
        browser.save_screenshot(os.environ["DSL_UI_SCREENSHOT_SUSPENDED"])

    # Resume: the bytes move again
    cell(browser, arn, "resume").click()
    wait_for(lambda: (value(browser, arn, "bytes") or 0) > frozen, 30)
    assert summary(browser, arn, "data-value") == 0

    # one item from the list: the one with the most left to copy
    def left(index: int) -> int:
        found = item_cell(browser, arn, index, "item-bytes")
        return 512 * 1024 - int(found.get_attribute("data-value") or 0) if found else 0

    index = max((1, 2, 3), key=left)
    item_cell(browser, arn, index, "item-suspend").click()
    wait_for(
        lambda: (
            item_cell(browser, arn, index, "item-status").get_attribute("data-value") == "SUSPENDED"
        ),
        20,
    )
    assert summary(browser, arn, "data-value") == 1
    assert item_cell(browser, arn, index, "item-resume").is_displayed()
    assert not item_cell(browser, arn, index, "item-suspend").is_displayed()
    item_cell(browser, arn, index, "item-resume").click()
    wait_for(
        lambda: (
            item_cell(browser, arn, index, "item-status") is None
            or item_cell(browser, arn, index, "item-status").get_attribute("data-value")
            != "SUSPENDED"
        ),
        20,
    )
    recent = wait_for(
        lambda: browser.find_elements(By.CSS_SELECTOR, f'#recent tr[data-arn="{arn}"]'), 60
    )
    assert recent[0].find_element(By.CSS_SELECTOR, '[data-role="status"]').text == "SUCCESS"
    assert finished(ds, arn)["Status"] == "SUCCESS"
    for name in ("a", "b", "c"):
        copied = root / "dst" / name / f"{name}0000.bin"
        assert copied.read_bytes() == (root / "src" / name / f"{name}0000.bin").read_bytes()


def cell_of_items(browser: Any, arn: str, role: str) -> Any:
    found = browser.find_elements(
        By.CSS_SELECTOR, f'#running tr[data-items-of="{arn}"] [data-role="{role}"]'
    )
    return found[0] if found else None
