"""A GRPO job's rollouts tab in a real browser: the chart of every reward component's mean per step (and the total)
with the `reward_divergence` warning shaded on the steps it names, and the step slider over each step's completions
with their prompt, reward components, total and advantage. The job's rows are inserted as the administrator."""

import json
import uuid
from typing import Any

import asyncpg
import pytest
from api_rows import insert_job
from playwright.async_api import Page, expect
from test_api_rollouts import GRPO_CONFIG, PER_STEP, insert_rollouts
from ui_support import (
    admin_fixture,  # noqa: F401  fixture
    browser_fixture,  # noqa: F401  fixture
    page_fixture,  # noqa: F401  fixture
    publish_screenshot,
    screenshot_path,
    sign_in,
)

pytestmark = pytest.mark.stack

STEPS = 4
DIVERGENCE = (
    "reward component 'is_json' rose by 0.750 while 'label' fell by 0.750 over steps 2-4: the policy may be"
    " satisfying one reward at the other's expense"
)


async def grpo_job(admin: asyncpg.Connection, owner: str) -> uuid.UUID:
    """A completed GRPO job with rewards logged at each step, rollouts at each step and one divergence warning."""
    job_id = await insert_job(admin, owner, status="completed", config=GRPO_CONFIG)
    await admin.executemany(
        "INSERT INTO job_progress (job_id, step, owner_id, max_steps, epoch, loss, learning_rate, samples_per_second,"
        " rewards, reward, occurred_at) VALUES ($1, $2, $3, $4, $5, 0.1, 0.001, 1.0, $6::jsonb, $7, now())",
        [
            (
                job_id,
                step,
                owner,
                STEPS,
                step / STEPS,
                json.dumps(
                    {
                        "label": {"mean": 1.0 - step / STEPS, "pass_rate": 1.0 - step / STEPS},
                        "is_json": {"mean": step / STEPS, "pass_rate": step / STEPS},
                    }
                ),
                0.5,
            )
            for step in range(1, STEPS + 1)
        ],
    )
    await admin.execute(
        "INSERT INTO job_warnings (event_id, job_id, owner_id, code, message, occurred_at)"
        " VALUES ($1, $2, $3, 'reward_divergence', $4, now())",
        uuid.uuid4(),
        job_id,
        owner,
        DIVERGENCE,
    )
    await insert_rollouts(admin, job_id, owner, range(1, STEPS + 1))
    return job_id


async def test_the_rollouts_tab_charts_each_component_marks_the_divergence_and_slides_by_step(
    full_stack: Any, admin: asyncpg.Connection, page: Page
) -> None:
    owner = f"grpo-ui-{uuid.uuid4()}"
    job_id = await grpo_job(admin, owner)
    await sign_in(page, full_stack.api_url, full_stack.mint_token(owner))
    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{job_id}")
    await page.locator("#tab-rollouts").click()
    await expect(page.get_by_role("heading", name="Rollouts by step")).to_be_visible()

    chart = page.locator("#reward-chart")
    for name in ("label", "is_json", "Total"):
        await expect(chart.locator(f'g.series[data-series="{name}"] circle')).to_have_count(STEPS)
    await expect(chart.locator("rect.mark")).to_have_count(1)
    await expect(chart.locator("rect.mark title")).to_have_text(DIVERGENCE)
    await expect(page.locator("#divergence-list li")).to_have_text([f"⚠ steps 2-4: {DIVERGENCE}"])

    slider, rows = page.locator("#rollout-step"), page.locator("#rollout-table tbody tr")
    await expect(slider).to_have_value(str(STEPS))  # the newest step first
    await expect(rows).to_have_count(PER_STEP)
    await expect(rows.first.locator("td")).to_have_text(["0", "p", f"c{STEPS}.0", "1", "—", "1", "-0.25"])
    await slider.fill("2")
    await expect(page.locator("#rollout-step-value")).to_have_text("2")
    await expect(rows.nth(2).locator("td").nth(2)).to_have_text("c2.2")
    await expect(page.locator("#rollout-table thead th")).to_have_text(
        ["#", "Prompt", "Completion", "label", "is_json", "Total", "Advantage"]
    )
    await page.screenshot(path=screenshot_path("grpo_rollouts.png"), full_page=True)
    publish_screenshot("grpo_rollouts.png")
