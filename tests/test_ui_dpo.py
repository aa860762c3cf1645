"""A DPO job's page in a real browser (Debian's chromium driven by Playwright) against the real local stack: its
rewards of the chosen and rejected answers, their margin and its preference accuracy, charted per step beside the
loss from the progress history the API serves; an SFT job's page has no such chart."""

import json
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, expect
from ui_support import (
    admin_fixture,  # noqa: F401  fixture
    api_get,
    browser_fixture,  # noqa: F401  fixture
    insert_job,
    page_fixture,  # noqa: F401  fixture
    screenshot_path,
    sign_in,
)

pytestmark = pytest.mark.stack

SERIES = {
    "Chosen reward": "chosen_reward",
    "Rejected reward": "rejected_reward",
    "Margin": "reward_margin",
    "Accuracy": "reward_accuracy",
}


async def test_a_dpo_jobs_rewards_margin_and_accuracy_are_charted_beside_the_loss(
    full_stack: Any, admin: asyncpg.Connection, page: Page
) -> None:
    owner = "dora-ui"
    dpo = await insert_job(admin, owner, samples=2)
    sft = await insert_job(admin, owner, samples=2)
    await admin.execute(
        "UPDATE jobs SET config = config || $2::jsonb WHERE job_id = $1", dpo, json.dumps({"method": {"type": "dpo"}})
    )
    await admin.execute(  # every other logged step carries the DPO metrics: the chart skips the rest
        "UPDATE job_progress SET chosen_reward = step * 0.01, rejected_reward = -step * 0.02,"
        " reward_margin = step * 0.03, reward_accuracy = step / 20.0 WHERE job_id = $1 AND step % 4 = 0",
        dpo,
    )
    history = (await api_get(full_stack, owner, f"/v1/jobs/{dpo}/progress"))["items"]
    logged = {field: [p for p in history if p[field] is not None] for field in SERIES.values()}
    assert all(len(points) == 5 for points in logged.values()), history

    await sign_in(page, full_stack.api_url, full_stack.mint_token(owner))
    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{dpo}")
    chart = page.locator("#preference-chart")
    await expect(chart.locator("svg")).to_have_count(2)
    for name, field in SERIES.items():
        await expect(chart.locator(f'[data-series="{name}"] circle')).to_have_count(len(logged[field]))
    await page.screenshot(path=screenshot_path("dpo_job.png"), full_page=True)

    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{sft}")
    await expect(page.locator("#loss-chart svg")).to_be_visible()
    await expect(page.locator("#preference-chart")).to_have_count(0)
