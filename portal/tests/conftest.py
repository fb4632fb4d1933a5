"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, against the app served by pytest-django's
live server (a thread of this process, on the test database)."""

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"  # Debian's build (ops/bootstrap.sh installs it): Playwright's download is not used


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the provider portal in headless Chromium (Playwright)")


@pytest.fixture(scope="module")
def chromium():
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: ops/bootstrap.sh installs Debian's chromium package")
    expect.set_options(timeout=10_000)
    # Playwright's synchronous API keeps an event loop running in this thread, and Django refuses database calls
    # from a thread with a running loop; the tests' own calls (fixtures, checks) are synchronous all the same.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def portal(chromium, live_server, settings, make_user):
    """A signed-out browser tab at the live server, for a fresh user; fails the test if the page logged an error
    or threw, other than API refusals the test provoked on purpose."""
    from portal.tests.browser import Portal

    settings.PORTAL_TILE_URL = ""  # no tile server is reachable from tests: the shipped country outlines only
    screenshots = os.environ.get("PORTAL_SCREENSHOT_DIR")
    user = make_user()
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    session = Portal(page, live_server.url, user, Path(screenshots) if screenshots else None)
    page.on("console", session.collect)
    page.on("pageerror", session.collect)
    yield session
    context.close()
    assert not session.unexpected_problems(), session.unexpected_problems()


@pytest.fixture
def index_by_hand(settings):
    """Index builds wait until the test runs them, as with a busy worker: the page shows an area `pending` first,
    and `ready` once the test has built its index (hexindex.build.index_areas, what the worker runs)."""
    import redis

    from worker.celery import app

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = eager
    broker.flushdb()
