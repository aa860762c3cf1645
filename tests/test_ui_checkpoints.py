"""The job page with checkpoints, in a real browser: the rounds table's checkpoint column (size, download) and the
best round marked in the table and on the quality chart, for a real tiny-model job."""

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect
from test_checkpoints_end_to_end import LEARNING, memorable_dataset, ranked_rounds, run_job
from ui_support import (
    browser_fixture,  # noqa: F401  fixture
    page_fixture,  # noqa: F401  fixture
    screenshot_path,
    sign_in,
)

pytestmark = pytest.mark.stack


async def test_the_rounds_table_downloads_checkpoints_and_marks_the_best_round(
    full_stack: Any, page: Page, tmp_path: Path
) -> None:
    dataset = await memorable_dataset(full_stack, "uma")  # learnt: the rounds' ROUGE-L differ, one is best
    checkpoints = {"mode": "every_round", "metric": "mean_rouge_l"}
    job = await run_job(full_stack, "uma", dataset, LEARNING | {"predictions": {"checkpoints": checkpoints}})
    assert job["status"] == "completed", job
    assert job["best_round"] == ranked_rounds(job)[0] != 0, job["rounds"]
    await sign_in(page, full_stack.api_url, full_stack.mint_token("uma"))
    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{job['job_id']}")
    cells = page.locator('#rounds-table tbody td[data-col="checkpoint"]')
    await expect(cells).to_have_count(len(job["rounds"]))
    for index in range(len(job["rounds"])):
        await expect(cells.nth(index)).to_contain_text("Download (")
    best_row = page.locator(f'#rounds-table tbody tr[data-round-index="{job["best_round"]}"]')
    await expect(best_row.locator("#best-round")).to_have_text("★ best")
    await expect(page.locator("#best-round")).to_have_count(1)
    await expect(page.locator('#quality-chart [data-series^="★ Best round"] circle')).to_have_count(1)
    await expect(page.locator('#final-weights td[data-col="checkpoint"]')).to_contain_text("Download (")
    async with page.expect_download() as info:
        await cells.nth(1).get_by_role("button").click()
    download = await info.value
    assert download.suggested_filename == f"checkpoint-{job['job_id']}-round-1.tar"
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    assert saved.stat().st_size > 0
    await page.screenshot(path=screenshot_path("job_checkpoints.png"), full_page=True)
