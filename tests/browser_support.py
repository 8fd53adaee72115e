"""report.html opened as a user opens it: from disk, in Debian's headless Chromium (driven by
Playwright's Python package, never its downloaded browsers), with the network cut off.

`opened(path)` yields the page and the list of every non-file request it attempted (each was
aborted); a self-contained report leaves that list empty. JavaScript is off: the report must
read the same without it.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-background-networking"]
# Screenshots the browser tests leave behind (gitignored), for a human to look at.
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def need_chromium() -> None:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        # A fail, not a skip: a skipped browser test would check nothing, on CI or off it.
        pytest.fail(
            "Debian's chromium is not installed: the report's tests read report.html in it. "
            "Install it with `apt-get install -y chromium` (.ci/run does this).",
            pytrace=False,
        )


@contextlib.contextmanager
def opened(path: Path, *, width: int = 1100) -> Iterator[tuple[Any, list[str]]]:
    need_chromium()
    from playwright.sync_api import sync_playwright

    attempted: list[str] = []

    def refuse(route: Any) -> None:
        url = route.request.url
        if url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(
                java_script_enabled=False, viewport={"width": width, "height": 900}
            )
            context.route("**/*", refuse)
            page = context.new_page()
            # Seen as well as routed: a request the route missed would still be counted.
            page.on("request", lambda r: _note(r.url, attempted))
            page.goto(path.resolve().as_uri())
            yield page, attempted
        finally:
            browser.close()


def _note(url: str, attempted: list[str]) -> None:
    if not url.startswith("file://"):
        attempted.append(url)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / name
    page.screenshot(path=str(target), full_page=True)
    return target


def bar_values(page: Any, chart: str, kind: str = "") -> list[int]:
    """The values of the drawn bars of a chart (`#chart-hours`), of one kind if given."""
    selector = f"{chart} svg rect.bar{'.' + kind if kind else ''}"
    return [int(v) for v in page.locator(selector).evaluate_all(
        "els => els.filter(e => e.getBBox().height > 0).map(e => e.dataset.value)"
    )]  # fmt: skip


def text(page: Any, selector: str) -> str:
    return page.locator(selector).inner_text().strip()
