"""Graders at a glance on the job page, in a real browser against the real local stack: the rounds table and the
quality chart name every grader, the predictions table filters by a grader failing, and a sample's history shows
each grader's verdict per round, each as the API reports it. The job is inserted as the administrator with graded
predictions and round summaries (tests/test_ui_compare.py's graded_job), as the writer stores them."""

import uuid
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, expect
from test_ui_compare import GRADERS, graded_job
from ui_support import (
    admin_fixture,  # noqa: F401  fixture
    api_get,
    browser_fixture,  # noqa: F401  fixture
    page_fixture,  # noqa: F401  fixture
    sign_in,
)

pytestmark = pytest.mark.stack


async def test_every_grader_by_name_in_rounds_chart_filter_and_sample_history(
    full_stack: Any, admin: asyncpg.Connection, page: Page
) -> None:
    owner = "glance-ui"
    job_id = await graded_job(admin, owner, "glance", 1e-3, fast=False, dataset=str(uuid.uuid4()))
    names = [grader["name"] for grader in GRADERS]
    rounds = (await api_get(full_stack, owner, f"/v1/jobs/{job_id}/rounds"))["items"]
    await sign_in(page, full_stack.api_url, full_stack.mint_token(owner))
    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{job_id}")

    # The rounds table: one column per grader, by name, with each round's pass rate; one chart line per grader.
    table = page.locator("#rounds-table")
    await expect(table.locator("thead th.grader-col")).to_have_text([f"{name} pass rate" for name in names])
    for summary in rounds:
        row = table.locator(f'tbody tr[data-round-index="{summary["round_index"]}"]')
        for name in names:
            rate = summary["graders"][name]["pass_rate"]
            await expect(row.locator(f'td[data-grader="{name}"]')).to_have_text(f"{rate * 100:.1f}%")
    assert {summary["graders"]["city"]["pass_rate"] for summary in rounds} == {0.0, 0.75}  # not all alike
    for name in names:
        await expect(page.locator(f'#quality-chart [data-series="{name} pass rate"]')).to_have_count(1)

    # A round's grader cell links to the answers that grader failed in that round.
    last = rounds[-1]
    await table.locator(f'tbody tr[data-round-index="{last["round_index"]}"] td[data-grader="city"] a').click()
    failed_there = await api_get(
        full_stack, owner, f"/v1/jobs/{job_id}/predictions", step=last["step"], failing_grader="city"
    )
    assert [item["sample_id"] for item in failed_there["items"]] == ["row-000003"]  # the slow job's Lyon
    await expect(page.locator("#failing-filter")).to_have_value("city")
    await expect(page.locator("#predictions-table tbody tr")).to_have_count(1)
    await expect(page.locator("#predictions-table tbody tr")).to_have_attribute("data-sample-id", "row-000003")

    # The predictions table filtered by a grader failing: the API's rows, each showing that grader failed.
    await page.get_by_role("link", name="Predictions", exact=True).click()
    rows = page.locator("#predictions-table tbody tr")
    await expect(rows).to_have_count(3 * 4)  # three rounds of four samples
    await page.get_by_label("Failing grader").select_option("city")
    failing = (await api_get(full_stack, owner, f"/v1/jobs/{job_id}/predictions", failing_grader="city"))["items"]
    assert 0 < len(failing) < 12
    await expect(rows).to_have_count(len(failing))
    for index, item in enumerate(failing):
        await expect(rows.nth(index)).to_have_attribute("data-sample-id", item["sample_id"])
        await expect(rows.nth(index)).to_have_attribute("data-step", str(item["step"]))
        verdict = rows.nth(index).locator('[data-col="graders"] li[data-grader="city"]')
        await expect(verdict).to_have_attribute("data-passed", "false")
    await expect(rows.first.locator('[data-col="graders"] li')).to_have_count(len(names))

    # A sample's history: each grader's verdict at every round, as GET /v1/jobs/{id}/samples/{sample} has it.
    await rows.last.get_by_role("link", name="row-000003").click()
    history = await api_get(full_stack, owner, f"/v1/jobs/{job_id}/samples/row-000003")
    cards = page.locator(".round-card")
    await expect(cards).to_have_count(len(history["rounds"]))
    for sample_round in history["rounds"]:
        card = page.locator(f'.round-card[data-round-index="{sample_round["round_index"]}"]')
        for name, grade in sample_round["grades"].items():
            await expect(card.locator(f'.round-grades li[data-grader="{name}"]')).to_have_attribute(
                "data-passed", str(grade["passed"]).lower()
            )
    verdicts = [round_["grades"]["json"]["passed"] for round_ in history["rounds"]]
    assert verdicts == [False, False, True]  # the history really changes from round to round
