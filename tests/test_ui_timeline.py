"""The answer timeline in a real browser: the samples-by-rounds grid coloured by the chosen grader's pass/fail,
the regressions linked to the sample's diff view, and a round-against-round significance readout in words. The job
is inserted as the administrator with the graded rounds of test_api_timeline.py."""

import uuid
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, expect
from test_api_timeline import JSON_PASSES, timeline_job
from ui_support import (
    admin_fixture,  # noqa: F401  fixture
    browser_fixture,  # noqa: F401  fixture
    page_fixture,  # noqa: F401  fixture
    publish_screenshot,
    screenshot_path,
    sign_in,
)

pytestmark = pytest.mark.stack


async def test_the_grid_shows_each_verdict_and_the_regressions_and_the_significance(
    full_stack: Any, admin: asyncpg.Connection, page: Page
) -> None:
    job_id = await timeline_job(admin, "tina-ui", str(uuid.uuid4()))
    await sign_in(page, full_stack.api_url, full_stack.mint_token("tina-ui"))
    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{job_id}/timeline")
    await expect(page.get_by_role("heading", name="Answer timeline")).to_be_visible()
    await page.locator("#timeline-grader").select_option("json")

    grid = page.locator("#timeline-grid table")
    await expect(grid.locator("tbody tr")).to_have_count(len(JSON_PASSES))
    for i, passes in enumerate(JSON_PASSES):
        cells = grid.locator(f'tr[data-sample="row-{i:06d}"] td')
        await expect(cells).to_have_text(["✓" if verdict == "T" else "✗" for verdict in passes])
    regressions = page.locator("#regression-list li")
    await expect(regressions).to_have_text(
        [
            "row-000000 passed at round 1, failed at round 2",
            "row-000003 passed at round 0, failed at round 1",
        ]
    )

    await page.locator("#significance-a").select_option("0")
    await page.locator("#significance-b").select_option("2")
    await page.locator("#significance-run").click()
    json_line = page.locator('#significance-list li[data-grader="json"]')
    await expect(json_line).to_contain_text(
        "json: round 2 vs round 0: +1 passes, -1, p = 1: not significant at this sample size"
    )
    await page.screenshot(path=screenshot_path("answer_timeline.png"), full_page=True)
    publish_screenshot("answer_timeline.png")

    await regressions.first.get_by_role("link").click()
    await expect(page).to_have_url(f"{full_stack.api_url}/ui/#/jobs/{job_id}/compare?sample=row-000000")
    await expect(page.locator("#sample-picker")).to_have_value("row-000000")
