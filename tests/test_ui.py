"""The web UI in a real browser: Debian's chromium driven by Playwright, against the real local stack. The form and
the Datasets page have their own modules (test_ui_form.py, test_ui_datasets.py). Two kinds of jobs: one submitted
through the form (a catalog model, an uploaded dataset) and trained for real by the trainer (tiny model), watched
live until its rounds appear; and one inserted straight into Postgres as the administrator, with rounds, scores,
validator results and progress, so the table, the charts and the comparison view have known data to be checked
against the API. Screenshots of the form, the datasets page, the predictions table and the comparison view land in
test-artifacts/screenshots/ (and, with EPOCHSCOPE_UPDATE_SCREENSHOTS=1, docs/screenshots/).
"""

import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, expect
from test_ui_form import form_config
from ui_support import (
    REAL_JOB_TIMEOUT_MS,
    VALIDATOR_BADGE,
    admin_fixture,  # noqa: F401  fixture
    api_get,
    api_post,
    api_upload,
    browser_fixture,  # noqa: F401  fixture
    catalog_model,
    finish_job,
    insert_job,
    insert_round,
    main_nav,
    page_fixture,  # noqa: F401  fixture
    publish_screenshot,
    screenshot_path,
    sign_in,
    write_dataset,
)

pytestmark = pytest.mark.stack


async def test_sign_in_refuses_a_bad_token_and_each_user_sees_only_their_jobs(
    full_stack: Any, admin: asyncpg.Connection, page: Page
) -> None:
    alice_job = await insert_job(admin, "alice-ui", samples=2)
    await page.goto(f"{full_stack.api_url}/")
    await page.get_by_label("Bearer token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#token-error")).to_contain_text("refused")
    assert "#/signin" in page.url

    await sign_in(page, full_stack.api_url, full_stack.mint_token("bob-ui"))
    await expect(page.locator("#signed-in-user")).to_have_text("bob-ui")
    await expect(page.get_by_text("No jobs yet")).to_be_visible()
    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{alice_job}")
    await expect(page.get_by_role("heading", name="Job not found")).to_be_visible()

    await page.get_by_role("button", name="Sign out").click()
    await sign_in(page, full_stack.api_url, full_stack.mint_token("alice-ui"))
    await expect(page.locator(f'#jobs-table tr[data-job-id="{alice_job}"]')).to_be_visible()
    listed = await api_get(full_stack, "alice-ui", "/v1/jobs")
    await expect(page.locator("#jobs-table tbody tr")).to_have_count(len(listed["items"]))


async def test_job_page_table_and_comparison_match_the_api_and_update_live(
    full_stack: Any, admin: asyncpg.Connection, page: Page
) -> None:
    owner, samples = "carol-ui", 12
    job_id = await insert_job(admin, owner, samples=samples)
    for round_index in range(2):
        await insert_round(admin, job_id, owner, round_index, samples)

    await sign_in(page, full_stack.api_url, full_stack.mint_token(owner))
    await page.get_by_role("link", name=f"Job {str(job_id)[:8]}").click()
    await expect(page.locator(".job-head .badge")).to_have_text("running")
    await expect(page.locator("#live-status")).to_contain_text("Live")
    job = await api_get(full_stack, owner, f"/v1/jobs/{job_id}")
    progress = job["progress"]
    await expect(page.locator("#progress-text")).to_contain_text(
        f"Step {progress['step']} / {progress['max_steps']} · epoch {progress['epoch']:g} / 4"
    )
    assert await page.locator("#progress-bar").get_attribute("max") == str(progress["max_steps"])
    history = await api_get(full_stack, owner, f"/v1/jobs/{job_id}/progress")
    points = await page.locator('#loss-chart [data-series="Loss"] circle').count()
    assert points == len([point for point in history["items"] if point["loss"] is not None]) > 0

    # Rounds summary, as the API reports it.
    rounds = (await api_get(full_stack, owner, f"/v1/jobs/{job_id}/rounds"))["items"]
    table = page.locator("#rounds-table tbody tr")
    await expect(table).to_have_count(len(rounds))
    for index, summary in enumerate(rounds):
        await expect(table.nth(index).locator("th")).to_have_text(str(summary["round_index"]))
        await expect(table.nth(index).locator("td").nth(3)).to_have_text(str(summary["predictions"]))
    await expect(page.locator("#quality-chart svg")).to_be_visible()
    await expect(page.locator("#loss-chart svg")).to_be_visible()

    # Live: a new round written while the page is open appears without a reload. Its summary has not arrived: it
    # is shown in progress with its prediction count, and no metric (its rows are validated and scored).
    await page.evaluate("window.__notReloaded = true")
    await insert_round(admin, job_id, owner, 2, samples, summarized=False)
    await expect(table).to_have_count(3)
    assert await page.evaluate("window.__notReloaded === true")
    await expect(table.nth(2).locator("td").nth(2)).to_have_text("— (in progress)")
    await expect(table.nth(2).locator("td").nth(3)).to_have_text(str(samples))
    for column in ("pass-rate", "exact-match", "f1", "rouge-l"):
        await expect(table.nth(2).locator(f'[data-col="{column}"]')).to_have_text("—")
    await expect(table.nth(1).locator('[data-col="f1"]')).not_to_have_text("—")
    await expect(page.locator('#quality-chart [data-series="F1"] circle')).to_have_count(2)
    await page.screenshot(path=screenshot_path("job.png"), full_page=True)
    publish_screenshot("job.png")

    # The predictions table: first page, filters, pagination, expand, badges and scores.
    await page.get_by_role("link", name="Predictions", exact=True).click()
    rows = page.locator("#predictions-table tbody tr")
    await expect(rows).to_have_count(25)
    api_page = await api_get(full_stack, owner, f"/v1/jobs/{job_id}/predictions", limit=25)
    for index, item in enumerate(api_page["items"][:5]):
        row = rows.nth(index)
        await expect(row).to_have_attribute("data-sample-id", item["sample_id"])
        await expect(row.locator('[data-col="validator"]')).to_have_text(VALIDATOR_BADGE[item.get("valid")])
    await expect(page.get_by_role("button", name="← Previous")).to_be_disabled()
    await page.get_by_role("button", name="Next →").click()
    await expect(page.locator("#page-info")).to_have_text(f"Page 2 · rows 26–{3 * samples}")
    await expect(rows).to_have_count(3 * samples - 25)
    second = await api_get(
        full_stack, owner, f"/v1/jobs/{job_id}/predictions", limit=25, cursor=api_page["next_cursor"]
    )
    await expect(rows.first).to_have_attribute("data-sample-id", second["items"][0]["sample_id"])
    await expect(page.get_by_role("button", name="Next →")).to_be_disabled()
    await page.get_by_label("Round", exact=True).select_option(label="Round 1 (epoch 2, step 20)")
    await expect(rows).to_have_count(samples)
    round_one = await api_get(full_stack, owner, f"/v1/jobs/{job_id}/predictions", step=20, limit=100)
    first = round_one["items"][0]
    prompt_cell = rows.first.locator('[data-col="prompt"] button')
    await expect(prompt_cell).to_have_attribute("aria-expanded", "false")
    assert first["prompt"] not in (await prompt_cell.text_content() or "")
    await prompt_cell.click()
    await expect(prompt_cell).to_have_attribute("aria-expanded", "true")
    await expect(prompt_cell).to_have_text(first["prompt"])
    await expect(rows.first.locator('[data-col="prediction"]')).to_contain_text(first["prediction"][:20])
    await expect(rows.first.locator('[data-col="ground-truth"]')).to_contain_text(first["ground_truth"][:20])
    if "f1" in first or "scores" in first:
        f1 = first.get("f1", (first.get("scores") or {}).get("f1"))
        await expect(rows.first.locator('[data-col="f1"]')).to_have_text(f"{f1:g}")
    await page.screenshot(path=screenshot_path("predictions.png"), full_page=True)
    publish_screenshot("predictions.png")
    await page.get_by_label("Round", exact=True).select_option("")
    await page.get_by_label("Epoch", exact=True).select_option(label="1")
    await expect(rows).to_have_count(samples)
    await expect(rows.first.locator("td").nth(1)).to_have_text("1")

    # The comparison view: one sample at every round, ground truth and word diffs.
    await rows.nth(3).get_by_role("link", name="row-000003").click()
    await expect(page.get_by_label("Sample", exact=True)).to_have_value("row-000003")
    history = await api_get(full_stack, owner, f"/v1/jobs/{job_id}/samples/row-000003")
    await expect(page.locator("#compare-ground-truth")).to_have_text(history["ground_truth"])
    await expect(page.locator("#compare-prompt")).to_have_text(history["prompt"])
    cards = page.locator(".round-card")
    await expect(cards).to_have_count(len(history["rounds"]))
    for index, sample_round in enumerate(history["rounds"]):
        await expect(cards.nth(index).locator(".prediction-text")).to_have_text(sample_round["prediction"])
    await expect(cards.nth(0).locator(".diff-previous")).to_contain_text("First round")
    await expect(cards.nth(1).locator(".diff-previous ins").first).to_be_visible()
    await expect(cards.nth(1).locator(".diff-previous del").first).to_be_visible()
    await expect(cards.nth(0).locator(".diff-truth del").first).to_be_visible()
    await expect(cards.nth(2).locator(".diff-truth")).to_contain_text("Matches the ground truth")
    await page.screenshot(path=screenshot_path("comparison.png"), full_page=True)
    publish_screenshot("comparison.png")

    # Keyboard: the next sample button is reachable and works.
    await page.get_by_role("button", name="Next sample →").focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Sample", exact=True)).to_have_value("row-000004")

    # Live status: the job finishing reaches the page without a reload.
    await finish_job(admin, job_id)
    await expect(page.locator(".job-head .badge")).to_have_text("completed")
    await expect(page.locator("#live-status")).to_contain_text("ended")
    assert await page.evaluate("window.__notReloaded === true")


async def test_a_job_submitted_through_the_form_trains_on_its_uploaded_dataset_and_shows_its_rounds_live(
    full_stack: Any, tiny_model_dir: Path, tmp_path: Path, page: Page
) -> None:
    user = "dora-ui"
    model = await catalog_model(full_stack, user, tiny_model_dir)
    dataset = await api_upload(full_stack, user, write_dataset(tmp_path / "train.jsonl"))
    await sign_in(page, full_stack.api_url, full_stack.mint_token(user))
    await main_nav(page, "New job").click()
    await page.get_by_label("Model", exact=True).select_option(model["id"])
    await page.get_by_label("Training dataset").select_option(dataset["dataset_id"])
    await page.get_by_label("Epochs").fill("2")
    await page.get_by_label("Batch size").fill("4")
    await page.get_by_label("Learning rate").fill("0.001")
    await page.get_by_label("Max sequence length").fill("64")
    await page.get_by_label("LoRA", exact=True).uncheck()
    slider = page.get_by_label(re.compile("^Sample count"))
    await slider.focus()
    await page.keyboard.press("Home")
    await page.keyboard.press("ArrowRight")
    await page.keyboard.press("ArrowRight")
    await expect(page.locator("#sample-count-value")).to_have_text("3")
    await page.get_by_label("Max new tokens").fill("8")
    await page.get_by_label("Require valid JSON").check()
    config = form_config(model["id"], dataset["dataset_id"], sample_count=3, max_new_tokens=8)
    config |= {"num_epochs": 2, "batch_size": 4, "learning_rate": 0.001, "max_length": 64, "lora": None}
    expected = await api_post(full_stack, user, "/v1/predictions/estimate", {"config": config})
    await expect(page.locator("#estimate-predictions")).to_have_text(f"{expected['predictions']:,}")
    preview = page.locator("#prediction-set tbody tr")
    await expect(preview).to_have_count(3)
    previewed = {await preview.nth(index).get_attribute("data-sample-id") for index in range(3)}
    assert previewed == {str(sample["sample_id"]) for sample in expected["samples"]}
    await page.get_by_role("button", name="Create job").click()

    await expect(page).to_have_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    # The job names its model and its dataset by name, and it is in the jobs list.
    await expect(page.locator(".facts")).to_contain_text(model["display_name"])
    await expect(page.locator(".facts").get_by_role("link", name="train.jsonl")).to_be_visible()
    await main_nav(page, "Jobs").click()
    await expect(page.locator(f'#jobs-table tr[data-job-id="{job_id}"]')).to_contain_text(model["id"])
    await page.get_by_role("link", name=f"Job {job_id[:8]}").click()

    await page.evaluate("window.__notReloaded = true")
    rounds = page.locator("#rounds-table tbody tr")
    await expect(rounds.first).to_be_visible(timeout=REAL_JOB_TIMEOUT_MS)
    await expect(page.locator(".job-head .badge")).to_have_text("completed", timeout=REAL_JOB_TIMEOUT_MS)
    assert await page.evaluate("window.__notReloaded === true")

    api_rounds = (await api_get(full_stack, user, f"/v1/jobs/{job_id}/rounds"))["items"]
    assert len(api_rounds) >= 2  # one per epoch (and a baseline round before training, if the trainer makes one)
    await expect(rounds).to_have_count(len(api_rounds))
    progress = (await api_get(full_stack, user, f"/v1/jobs/{job_id}"))["progress"]
    await expect(page.locator("#progress-text")).to_contain_text(f"Step {progress['step']} / {progress['max_steps']}")
    await page.get_by_role("link", name="Predictions", exact=True).click()
    predictions = (await api_get(full_stack, user, f"/v1/jobs/{job_id}/predictions", limit=100))["items"]
    assert {item["sample_id"] for item in predictions} == previewed  # the previewed set is the one predicted
    rows = page.locator("#predictions-table tbody tr")
    await expect(rows).to_have_count(len(predictions))
    for index, item in enumerate(predictions):
        await expect(rows.nth(index)).to_have_attribute("data-sample-id", item["sample_id"])
        await expect(rows.nth(index).locator('[data-col="validator"]')).to_have_text(VALIDATOR_BADGE[item.get("valid")])

    await page.get_by_role("link", name="Compare", exact=True).click()
    await expect(page.locator(".round-card").first).to_be_visible()
    sample_id = await page.get_by_label("Sample", exact=True).input_value()
    assert sample_id in {item["sample_id"] for item in predictions}
    history = await api_get(full_stack, user, f"/v1/jobs/{job_id}/samples/{sample_id}")
    await expect(page.locator("#compare-ground-truth")).to_have_text(history["ground_truth"])
    await expect(page.locator(".round-card")).to_have_count(len(history["rounds"]))
    for index, sample_round in enumerate(history["rounds"]):
        shown = sample_round["prediction"] or "(empty)"
        await expect(page.locator(".round-card .prediction-text").nth(index)).to_have_text(shown)
