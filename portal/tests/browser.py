"""Helpers for driving the portal in Chromium the way a person does: sign in, look at a place, click, drag and draw
with the mouse, type with the keyboard. Not fixtures: portal/tests/conftest.py builds them."""

import re
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Error, Page, expect

# What Chromium logs for a request the server refused: expected when a test provokes a refusal on purpose.
REFUSED_REQUEST = re.compile(r"the server responded with a status of (\d{3})")
PASSWORD = "a long test passphrase"  # conftest's make_user


@dataclass
class Portal:
    page: Page
    base_url: str
    user: object  # the signed-in user (django.contrib.auth)
    screenshot_dir: Path | None
    problems: list = field(default_factory=list)
    expected_refusals: set = field(default_factory=set)

    # --- what the browser reported

    def collect(self, problem: ConsoleMessage | Error) -> None:
        if isinstance(problem, ConsoleMessage) and problem.type != "error":
            return
        self.problems.append(problem)

    def expect_refusal(self, status: int) -> None:
        """The next action is meant to be refused by the API with this status: the browser's log of that request
        is not an error of the page."""
        self.expected_refusals.add(status)

    def unexpected_problems(self) -> list[str]:
        unexpected = []
        for problem in self.problems:
            if isinstance(problem, ConsoleMessage):
                refused = REFUSED_REQUEST.search(problem.text)
                if refused and int(refused.group(1)) in self.expected_refusals:
                    continue
                unexpected.append(f"console: {problem.text} ({problem.location.get('url')})")
            else:
                unexpected.append(f"page error: {problem}")
        return unexpected

    # --- what a person does

    def sign_in(self) -> Page:
        page = self.page
        page.goto(f"{self.base_url}/portal/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.get_by_label("Username").fill(self.user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("application")).to_be_visible()
        expect(page.get_by_role("status")).to_have_text(re.compile(r"^(Loaded|Welcome)"))  # providers and areas are in
        return page

    def look_at(self, lat: float, lng: float, zoom: int) -> None:
        """Puts that place in the middle of the map, as panning and zooming there would."""
        self.page.evaluate(
            "([lat, lng, zoom]) => { portalMap.setView([lat, lng], zoom, {animate: false}); }", [lat, lng, zoom]
        )

    def on_screen(self, lat: float, lng: float) -> tuple[float, float]:
        """Where a place is on the page, in pixels."""
        return tuple(
            self.page.evaluate(
                """([lat, lng]) => {
                    const point = portalMap.latLngToContainerPoint([lat, lng]);
                    const box = portalMap.getContainer().getBoundingClientRect();
                    return [box.left + point.x, box.top + point.y];
                }""",
                [lat, lng],
            )
        )

    def click_map(self, lat: float, lng: float) -> None:
        self.page.mouse.click(*self.on_screen(lat, lng))

    def draw(self, corners: list[tuple[float, float]]) -> None:
        """Clicks each corner (lat, lng) on the map, then the first one again to close the shape."""
        for lat, lng in [*corners, corners[0]]:
            self.click_map(lat, lng)
            self.page.wait_for_timeout(80)  # a person's pace: separate clicks, never a double-click

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        """Presses the mouse at one place (lat, lng) and lets go at another."""
        mouse = self.page.mouse
        mouse.move(*self.on_screen(*start))
        mouse.down()
        x, y = self.on_screen(*end)
        mouse.move(x, y, steps=12)
        mouse.up()

    def screenshot(self, name: str) -> None:
        if self.screenshot_dir is not None:
            self.page.screenshot(path=self.screenshot_dir / name)
