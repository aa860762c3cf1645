"""The jobs comparison in a real browser: pick two jobs in the list (shown by name), open the comparison, read the
overlaid charts and the side-by-side answers with their grades, filter, and export. Jobs are inserted as the
administrator with graded predictions and round summaries, as the writer stores them."""

import json
import uuid
from typing import Any

import asyncpg
import pytest
from api_rows import insert_job
from playwright.async_api import Page, expect
from ui_support import (
    admin_fixture,  # noqa: F401  fixture
    browser_fixture,  # noqa: F401  fixture
    page_fixture,  # noqa: F401  fixture
    publish_screenshot,
    sample_text,
    screenshot_path,
    sign_in,
)

pytestmark = pytest.mark.stack

GRADERS = [
    {"type": "json_parse", "name": "json"},
    {"type": "json_field", "name": "city", "path": "city"},
    {"type": "text_similarity", "name": "chrf", "metric": "chrf", "threshold": 0.6},
]
SAMPLES = 4


def answer(sample: int, round_index: int, fast: bool) -> str:
    """The faster learner gets the bookings right a round earlier; at the end, on sample 3 the fast one gets the
    nights wrong and the slow one the city."""
    learned = round_index >= (1 if fast else 2)
    truth = json.loads(sample_text(sample)[1])
    if not learned:
        return f"Sure! City{sample} for {sample + 1} nights sounds lovely"
    if sample == 3 and fast:
        truth["nights"] += 1
    elif sample == 3:
        truth["city"] = "Lyon"
    return json.dumps(truth)


def grades_of(prediction: str, truth: str) -> dict[str, dict[str, Any]]:
    try:
        document = json.loads(prediction)
    except ValueError:
        document = None
    city = document is not None and document.get("city") == json.loads(truth)["city"]
    chrf = 1.0 if prediction == truth else (0.7 if document else 0.3)
    return {
        "json": {"score": float(document is not None), "passed": document is not None, "error": None},
        "city": {"score": float(city), "passed": city, "error": None if city else "no value at city"},
        "chrf": {"score": chrf, "passed": chrf >= 0.6, "error": None},
    }


async def graded_job(
    admin: asyncpg.Connection, owner: str, name: str, lr: float, fast: bool, dataset: str
) -> uuid.UUID:
    config = {
        "name": name,
        "metadata": {"sweep": "lr"},
        "model": "tiny-inserted",
        "dataset_id": dataset,
        "learning_rate": lr,
        "predictions": {"enabled": True, "sample_count": SAMPLES, "graders": GRADERS},
    }
    job_id = await insert_job(admin, owner, status="completed", config=config)
    for round_index in range(3):
        rows, summary = [], {name: {"graded": 0, "passed": 0, "mean_score": 0.0} for name in ("json", "city", "chrf")}
        for sample in range(SAMPLES):
            prompt, truth = sample_text(sample)
            prediction = answer(sample, round_index, fast)
            grades = grades_of(prediction, truth)
            for key, grade in grades.items():
                summary[key]["graded"] += 1
                summary[key]["passed"] += grade["passed"]
                summary[key]["mean_score"] += grade["score"] / SAMPLES
            rows.append(
                (job_id, round_index * 10, f"row-{sample:06d}", owner, round_index, float(round_index), sample, prompt)
                + (truth, prediction, float(prediction == truth), json.dumps(grades), uuid.uuid4())
            )
        await admin.executemany(
            "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,"
            " prompt, ground_truth, prediction, exact_match, f1, rouge_l, grades, event_id, occurred_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11, $12::jsonb, $13, now())",
            rows,
        )
        await admin.execute(
            "INSERT INTO job_rounds (job_id, round_index, owner_id, epoch, step, trigger, predictions, validated,"
            " valid, scored, mean_exact_match, mean_f1, mean_rouge_l, graders, tokens_generated, wall_ms, stall_ms,"
            " occurred_at) VALUES ($1, $2::int, $3, $2::int::float8, $2::int * 10, 'epoch', $4, 0, 0, $4, $5, $5, $5,"
            " $6::jsonb, 64, 900, 850, now())",
            job_id,
            round_index,
            owner,
            SAMPLES,
            sum(row[10] for row in rows) / SAMPLES,
            json.dumps(summary),
        )
    return job_id


async def test_two_jobs_selected_in_the_list_compare_side_by_side_with_filters_and_export(
    full_stack: Any, admin: asyncpg.Connection, page: Page
) -> None:
    dataset = str(uuid.uuid4())
    slow = await graded_job(admin, "erin-ui", "booking lr 2e-4", 2e-4, fast=False, dataset=dataset)
    fast = await graded_job(admin, "erin-ui", "booking lr 1e-3", 1e-3, fast=True, dataset=dataset)
    await sign_in(page, full_stack.api_url, full_stack.mint_token("erin-ui"))

    await expect(page.get_by_role("link", name="Job booking lr 2e-4")).to_be_visible()  # the name, not the id
    compare = page.locator("#compare-jobs")
    await expect(compare).to_be_disabled()
    await page.get_by_label("Select booking lr 2e-4 to compare").check()
    await page.get_by_label("Select booking lr 1e-3 to compare").check()
    await expect(compare).to_have_text("Compare selected (2)")
    await compare.click()

    await expect(page.get_by_role("heading", name="Compare jobs")).to_be_visible()
    await expect(page.locator("#compare-summary")).to_contain_text("4 shared samples")
    # The latest rounds differ on one verdict, sample 3's city (the slow job's Lyon): one flip is noise.
    city_change = page.locator('#compare-significance li[data-grader="city"]')
    await expect(city_change).to_contain_text(  # after (the fast one) vs before (the slow one, selected first)
        "city: job booking lr 1e-3 vs job booking lr 2e-4: +1 passes, -0, p = 1: not significant at this sample size"
    )
    await expect(page.locator('#compare-significance li[data-grader="json"]')).to_contain_text("+0 passes, -0, p = 1")
    city_chart = page.locator('[data-metric="city (mean score)"]')
    await expect(city_chart.locator("[data-series]")).to_have_count(2)
    await expect(city_chart.locator(".legend")).to_contain_text("booking lr 1e-3")
    table = page.locator("#compare-table")
    await expect(table.locator("thead th")).to_have_text(
        ["Sample", "Ground truth", "booking lr 2e-4", "booking lr 1e-3"]
    )
    await expect(table.locator("tbody tr")).to_have_count(SAMPLES)
    last = table.locator('tr[data-sample-id="row-000003"]')
    await expect(last.locator(f'td[data-job-id="{fast}"] ins').first).to_contain_text("City3")  # vs the first's Lyon
    await expect(last.locator(f'td[data-job-id="{slow}"] .grades .fail')).to_contain_text("city")
    await expect(last.locator(f'td[data-job-id="{fast}"] .grades .fail')).to_have_count(0)
    await page.screenshot(path=screenshot_path("compare_jobs.png"), full_page=True)
    publish_screenshot("compare_jobs.png")

    await page.locator("#compare-filter").select_option("disagree")
    await expect(table.locator("tbody tr")).to_have_count(1)  # only row 3: the other answers are the same booking
    await page.locator("#compare-filter").select_option("split")
    await expect(table.locator("tbody tr")).to_have_attribute("data-sample-id", "row-000003")  # city: fails, passes
    async with page.expect_download() as download:
        await page.locator('[data-export="csv"]').click()
    content = (await (await download.value).path()).read_text()
    assert content.startswith("job_id,job_name,") and content.count("\n") == 1 + 2 * 3 * SAMPLES

    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{slow}")
    await expect(page.locator("#job-name")).to_have_text("booking lr 2e-4")
    await expect(page.locator('[data-key="sweep"]')).to_have_text("sweep: lr")
    await expect(page.locator('#quality-chart [data-series="city pass rate"]')).to_have_count(1)
