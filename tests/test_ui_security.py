"""The browser side of the API's hardening, in Debian's chromium: the UI runs under its Content-Security-Policy
(the page fixture fails on any refusal; every UI test checks the same), the docs page renders from the pinned local
assets under its own. (That no other origin may frame a page is checked on the headers, in test_api_edge*.py: this
chromium renders no cross-origin frame of a loopback page, headers or not, so a framing test here could not fail.)"""

from typing import Any

import pytest
from playwright.async_api import Page, expect
from ui_support import (
    browser_fixture,  # noqa: F401  fixture
    page_fixture,  # noqa: F401  fixture
)

pytestmark = pytest.mark.stack


async def test_the_docs_render_from_local_assets_under_their_policy(full_stack: Any, page: Page) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"{full_stack.api_url}/docs")
    await expect(page.locator(".swagger-ui .title")).to_contain_text("Epochscope API", timeout=30_000)
    await expect(page.get_by_text("/v1/jobs/{job_id}/stream-tickets").first).to_be_visible()
    foreign = [url for url in requested if not url.startswith(full_stack.api_url)]
    assert not foreign, foreign
