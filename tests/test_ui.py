"""The web UI in a real browser: Debian's chromium driven by Playwright, against the real local stack.

Datasets are uploaded through the Datasets page (progress, report, rows, delete) or through the API.
Two kinds of jobs: one submitted through the form (a catalog model, an uploaded dataset) and trained for
real by the trainer (tiny model), watched live until its rounds appear; and one inserted straight into
Postgres as the administrator, with rounds, scores, validator results and progress, so the table, the charts
and the comparison view have known data to be checked against the API. Screenshots of the form, the datasets
page, the predictions table and the comparison view land in test-artifacts/screenshots/ (and, with
EPOCHSCOPE_UPDATE_SCREENSHOTS=1, docs/screenshots/).
"""

import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from playwright.async_api import Page, Route, expect
from ui_support import (
    REAL_JOB_TIMEOUT_MS,
    VALIDATOR_BADGE,
    admin_fixture,  # noqa: F401  fixture
    api_delete,
    api_get,
    api_post,
    api_upload,
    browser_fixture,  # noqa: F401  fixture
    catalog_model,
    estimate_figure,
    finish_job,
    insert_job,
    insert_round,
    main_nav,
    page_fixture,  # noqa: F401  fixture
    publish_screenshot,
    screenshot_path,
    sign_in,
    write_dataset,
    write_malformed_dataset,
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


def form_config(model: str, dataset_id: str, **predictions: Any) -> dict[str, Any]:
    """The config the job form sends for its estimate, with its defaults (no validators), changed by `predictions`."""
    return {
        "model": model,
        "dataset_id": dataset_id,
        "num_epochs": 3,
        "batch_size": 8,
        "learning_rate": 0.0002,
        "max_length": 512,
        "lora": {"r": 8, "alpha": 16},
        "predictions": {
            "enabled": True,
            "sample_count": 8,
            "sample_frequency": "epoch",
            "step_interval": None,
            "samples_dataset_id": None,
            "seed": 42,
            "max_new_tokens": 64,
            "temperature": 0,
            "top_p": 1,
            "validators": [],
        }
        | predictions,
    }


async def test_new_job_form_picks_model_and_dataset_previews_the_prediction_set_and_shows_errors_by_field(
    full_stack: Any, tmp_path: Path, page: Page
) -> None:
    user = "formy"
    await sign_in(page, full_stack.api_url, full_stack.mint_token(user))
    await main_nav(page, "New job").click()
    await expect(page.get_by_role("heading", name="New fine-tuning job")).to_be_visible()
    limits = await api_get(full_stack, user, "/v1/limits")
    model = await catalog_model(full_stack, user)

    # No dataset yet: the form says where to upload one, has no estimate, and refuses to submit.
    await expect(page.locator("#dataset-note")).to_contain_text("no datasets yet")
    await expect(page.locator("#upload-dataset-link")).to_have_attribute("href", "#/datasets")
    await expect(page.locator("#estimate-status")).to_contain_text("Choose a training dataset")
    await page.get_by_role("button", name="Create job").click()
    await expect(page.locator("#dataset-error")).to_contain_text("Choose a training dataset")
    await expect(page.locator("#form-errors")).to_be_focused()

    dataset = await api_upload(full_stack, user, write_dataset(tmp_path / "sums.jsonl", rows=80))
    await page.reload()
    await expect(page.get_by_label("Training dataset")).to_have_value(dataset["dataset_id"])  # the only one
    await expect(page.get_by_label("Model", exact=True)).to_have_value(model["id"])
    options = page.get_by_label("Model", exact=True).locator("option", has_text=model["display_name"])
    await expect(options).to_have_count(1)
    await expect(page.locator("#model-details")).to_contain_text(f"context {model['context_length']:,} tokens")
    assert await page.locator("#dataset-path, #dataset-rows").count() == 0  # no path, no row count any more

    # Every control has a label.
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('main input, main select, main textarea')]
            .filter(el => !el.labels?.length && !el.getAttribute('aria-label')).map(el => el.id || el.name)"""
    )
    assert unlabelled == []

    async def expected(**predictions: Any) -> dict[str, Any]:
        body = {"config": form_config(model["id"], dataset["dataset_id"], **predictions)}
        return await api_post(full_stack, user, "/v1/predictions/estimate", body)

    async def expect_estimate(estimate: dict[str, Any]) -> None:
        for name in ("rounds", "predictions", "prompt_tokens", "generated_tokens"):
            shown = "—" if estimate[name] is None else f"{estimate[name]:,}"
            await expect(page.locator(f"#estimate-{name.replace('_', '-')}")).to_have_text(shown)
        rows = page.locator("#prediction-set tbody tr")
        await expect(rows).to_have_count(len(estimate["samples"]))
        for index in (0, len(estimate["samples"]) - 1):
            sample = estimate["samples"][index]
            await expect(rows.nth(index)).to_have_attribute("data-sample-id", str(sample["sample_id"]))
            await expect(rows.nth(index).locator('[data-col="line"]')).to_have_text(str(sample["line"]))

    # The estimate and the prediction set (prompt and ground truth) are the API's, for the form's config.
    estimate = await expected()
    assert len(estimate["samples"]) == 8
    await expect_estimate(estimate)
    first = page.locator("#prediction-set tbody tr").first
    await expect(first.locator('[data-col="prompt"]')).to_contain_text("plus")
    await expect(first.locator('[data-col="ground-truth"]')).to_contain_text("answer")
    before = await estimate_figure(page, "price")

    # The slider, by keyboard: End goes to the server's max; the estimate and the preview follow.
    slider = page.get_by_label(re.compile("^Sample count"))
    await slider.focus()
    await page.keyboard.press("End")
    await expect(page.locator("#sample-count-value")).to_have_text(str(limits["max_sample_count"]))
    assert await slider.get_attribute("max") == str(limits["max_sample_count"])
    estimate = await expected(sample_count=limits["max_sample_count"])
    await expect_estimate(estimate)
    assert await estimate_figure(page, "price") != before

    # A warning past the threshold, and none under it.
    await expect(page.locator("#estimate-warning")).to_be_hidden()
    await page.get_by_label("Warn above (USD)").fill(str(estimate["price_usd"] / 2))
    await expect(page.locator("#estimate-warning")).to_contain_text("above your warning threshold")
    await page.keyboard.press("Tab")
    for _ in range(limits["max_sample_count"] - 16):
        await slider.press("ArrowLeft")
    await expect(page.locator("#sample-count-value")).to_have_text("16")
    await page.get_by_label("Warn above (USD)").fill("5")
    await expect(page.locator("#estimate-warning")).to_be_hidden()

    # The JSON Schema textarea shows a parse error inline, and clears it once the schema parses.
    await page.get_by_label("Require valid JSON").check()
    await page.get_by_label("Match a JSON Schema").check()
    schema = page.get_by_label("JSON Schema", exact=True)
    await schema.fill('{"type": "object", "required": ["answer"')
    await expect(page.locator("#json-schema-parse-error")).to_contain_text("Not valid JSON")
    await expect(schema).to_have_attribute("aria-invalid", "true")
    await schema.fill('{"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}')
    await expect(page.locator("#json-schema-parse-error")).to_be_hidden()

    # Rounds follow the frequency; the seed picks another prediction set.
    interval = limits["min_step_interval"] * 5
    await page.get_by_label("Every N steps").check()
    await page.get_by_label(re.compile(r"^N \(steps")).fill(str(interval))
    await expect_estimate(await expected(sample_count=16, sample_frequency="steps", step_interval=interval))
    await page.get_by_label("At the end of every epoch").check()
    await page.get_by_label("Sampling seed").fill("7")
    await expect_estimate(await expected(sample_count=16, seed=7))
    await page.screenshot(path=screenshot_path("form.png"), full_page=True)
    publish_screenshot("form.png")

    # Server 422s land next to their fields: a schema that parses but is no JSON Schema...
    await schema.fill('{"type": "no-such-type"}')
    await page.get_by_role("button", name="Create job").click()
    await expect(page.locator("#json-schema-error")).to_contain_text("not a valid JSON Schema")
    await expect(page.locator("#form-errors")).to_be_focused()
    await page.locator("#form-errors").get_by_role("button", name=re.compile("^JSON Schema: ")).click()
    await expect(schema).to_be_focused()
    await expect(page.locator("#dataset-error")).to_be_hidden()
    await schema.fill('{"type": "object"}')
    # ...then a step interval under the server's limit and too many new tokens.
    await page.get_by_label("Every N steps").check()
    await page.get_by_label(re.compile(r"^N \(steps")).fill("1")
    await page.get_by_label("Max new tokens").fill(str(limits["max_new_tokens"] + 1))
    await page.get_by_role("button", name="Create job").click()
    await expect(page.locator("#step-interval-error")).to_contain_text(f"at least {limits['min_step_interval']}")
    await expect(page.locator("#max-new-tokens-error")).to_contain_text(f"at most {limits['max_new_tokens']}")
    await expect(page.get_by_label("Max new tokens")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#form-errors")).to_contain_text("rejected 2 fields")
    await expect(page.locator("#json-schema-error")).to_be_hidden()
    await page.screenshot(path=screenshot_path("form-errors.png"), full_page=True)
    assert page.url.endswith("#/new")
    assert (await api_get(full_stack, user, "/v1/jobs"))["items"] == []


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

    # Live: a new round written while the page is open appears without a reload.
    await page.evaluate("window.__notReloaded = true")
    await insert_round(admin, job_id, owner, 2, samples)
    await expect(table).to_have_count(3)
    assert await page.evaluate("window.__notReloaded === true")
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


RECORD_UPLOAD_STATUS = """() => {
    window.__uploadStatus = [];
    const status = document.getElementById('upload-status');
    new MutationObserver(() => window.__uploadStatus.push(status.textContent))
        .observe(status, { childList: true, characterData: true, subtree: true });
}"""


async def upload_through_the_page(page: Page, path: Path) -> None:
    await page.evaluate(RECORD_UPLOAD_STATUS)
    await page.get_by_label("Dataset file").set_input_files(path)
    await page.get_by_role("button", name="Upload", exact=True).click()


async def test_datasets_page_uploads_with_progress_then_shows_the_report_and_pages_through_rows(
    full_stack: Any, tmp_path: Path, page: Page
) -> None:
    user = "erin-ui"
    await sign_in(page, full_stack.api_url, full_stack.mint_token(user))
    await main_nav(page, "Datasets").click()
    await expect(page.get_by_role("heading", name="Datasets", exact=True)).to_be_visible()
    await expect(page.locator("#datasets-empty")).to_be_visible()

    path = write_dataset(tmp_path / "sums.jsonl", rows=45)
    await upload_through_the_page(page, path)
    await expect(page.locator("#upload-status")).to_contain_text("Uploaded and validated: sums.jsonl, 45 rows")
    await expect(page.locator("#upload-progress")).to_have_js_property("value", 100)
    statuses = await page.evaluate("window.__uploadStatus")
    assert any(re.fullmatch(r"\d+% · [\d.]+ of [\d.]+ MB", text) for text in statuses), statuses
    assert any(text.startswith("100% ·") and text.endswith("validating…") for text in statuses), statuses
    await expect(page.locator("#upload-result #malformed")).to_contain_text("No malformed rows")

    listed = (await api_get(full_stack, user, "/v1/datasets"))["items"]
    assert [item["filename"] for item in listed] == ["sums.jsonl"]
    dataset = listed[0]
    row = page.locator(f'#datasets-table tr[data-dataset-id="{dataset["dataset_id"]}"]')
    await expect(row).to_contain_text("sums.jsonl")
    await expect(row.locator('[data-col="rows"]')).to_have_text("45 rows")
    await expect(page.locator("#datasets-empty")).to_be_hidden()

    # Its page: facts, report, and the rows (prompt vs ground truth), 20 at a time.
    await row.get_by_role("link", name="sums.jsonl").click()
    await expect(page.get_by_role("heading", name=re.compile("^Dataset sums.jsonl"))).to_be_visible()
    await expect(page.locator("#dataset-facts")).to_contain_text(dataset["sha256"][:16])
    rows = page.locator("#rows-table tbody tr")
    await expect(rows).to_have_count(20)
    first_page = await api_get(full_stack, user, f"/v1/datasets/{dataset['dataset_id']}/rows", limit=20)
    first = first_page["items"][0]
    await expect(rows.first).to_have_attribute("data-line", str(first["line"]))
    prompt = first["prompt"] if isinstance(first["prompt"], str) else first["prompt"][-1]["content"]
    await expect(rows.first.locator('[data-col="prompt"]')).to_contain_text(prompt[:40])
    await expect(rows.first.locator('[data-col="ground-truth"]')).to_contain_text(str(first["ground_truth"])[:40])
    await page.get_by_role("button", name="Next →").click()
    await expect(page.locator("#rows-page-info")).to_have_text("Page 2 · rows 21–40")
    await page.get_by_role("button", name="Next →").click()
    await expect(rows).to_have_count(5)
    await expect(page.get_by_role("button", name="Next →")).to_be_disabled()
    await page.get_by_role("button", name="← Previous").click()
    await expect(page.locator("#rows-page-info")).to_have_text("Page 2 · rows 21–40")


async def test_a_malformed_upload_lists_its_bad_lines_and_refusals_are_explained(
    full_stack: Any, tmp_path: Path, page: Page
) -> None:
    user = "fay-ui"
    await sign_in(page, full_stack.api_url, full_stack.mint_token(user))
    await main_nav(page, "Datasets").click()
    path, bad = write_malformed_dataset(tmp_path / "messy.jsonl")
    await upload_through_the_page(page, path)
    await expect(page.locator("#upload-status")).to_contain_text("Uploaded and validated")
    dataset = (await api_get(full_stack, user, "/v1/datasets"))["items"][0]
    report = dataset["report"]
    assert [example["line"] for example in report["malformed_examples"]] == sorted(bad)

    result = page.locator("#upload-result")
    await expect(result.locator("#malformed")).to_contain_text(f"Malformed rows: {len(bad)}")
    reasons = result.locator("#malformed-reasons tbody tr")
    await expect(reasons).to_have_count(len(report["malformed_by_reason"]))
    examples = result.locator("#malformed-examples tbody tr")
    await expect(examples).to_have_count(len(bad))
    for index, example in enumerate(report["malformed_examples"]):
        await expect(examples.nth(index)).to_have_attribute("data-line", str(example["line"]))
        await expect(examples.nth(index)).to_contain_text(f"line {example['line']}")
        await expect(examples.nth(index)).to_contain_text(example["reason"])
    await expect(page.locator(f'#datasets-table tr[data-dataset-id="{dataset["dataset_id"]}"]')).to_contain_text(
        f"{dataset['usable_rows']} usable of {dataset['rows']} rows"
    )
    await page.screenshot(path=screenshot_path("datasets.png"), full_page=True)
    publish_screenshot("datasets.png")

    # A file with no usable row: the API's 422, said plainly; nothing is added.
    useless = tmp_path / "useless.jsonl"
    useless.write_text('{not json\n{"unrelated": 1}\n')
    await upload_through_the_page(page, useless)
    await expect(page.locator("#upload-error")).to_contain_text("The file was not accepted")
    await expect(page.locator("#upload-progress")).to_be_hidden()
    await expect(page.locator("#datasets-table tbody tr")).to_have_count(1)

    # Too large: the server's 413 (here from the route, since the stack's limit is 1 GiB) with its reason.
    async def too_large(route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        await route.fulfill(status=413, json={"detail": "the upload is larger than the 1 GiB limit"})

    await page.route("**/v1/datasets", too_large)
    await upload_through_the_page(page, path)
    await expect(page.locator("#upload-error")).to_have_text(
        "The file is too large: the upload is larger than the 1 GiB limit"
    )
    await page.unroute("**/v1/datasets", too_large)
    assert len((await api_get(full_stack, user, "/v1/datasets"))["items"]) == 1


async def test_deleting_a_dataset_a_queued_job_uses_shows_the_reason(
    full_stack: Any, admin: asyncpg.Connection, tmp_path: Path, page: Page
) -> None:
    user = "gus-ui"
    used = await api_upload(full_stack, user, write_dataset(tmp_path / "used.jsonl"))
    spare = await api_upload(full_stack, user, write_dataset(tmp_path / "spare.jsonl"))
    job_id = await insert_job(admin, user, samples=2, status="queued", dataset_id=used["dataset_id"])
    refused = await api_delete(full_stack, user, f"/v1/datasets/{used['dataset_id']}")
    assert refused.status_code == 409, refused.text
    reason = refused.json()["detail"]

    await sign_in(page, full_stack.api_url, full_stack.mint_token(user))
    page.on("dialog", lambda dialog: dialog.accept())
    await main_nav(page, "Datasets").click()
    await page.get_by_role("button", name="Delete used.jsonl").click()
    await expect(page.locator("#datasets-error")).to_have_text(f"Could not delete used.jsonl: {reason}")
    await expect(page.locator(f'#datasets-table tr[data-dataset-id="{used["dataset_id"]}"]')).to_be_visible()

    await page.get_by_role("button", name="Delete spare.jsonl").click()
    await expect(page.locator(f'#datasets-table tr[data-dataset-id="{spare["dataset_id"]}"]')).to_have_count(0)
    await expect(page.locator("#datasets-error")).to_be_hidden()
    assert [item["filename"] for item in (await api_get(full_stack, user, "/v1/datasets"))["items"]] == ["used.jsonl"]

    # Once the job is over, the dataset goes, from its own page.
    await finish_job(admin, job_id)
    await page.get_by_role("link", name="used.jsonl").click()
    await page.get_by_role("button", name="Delete dataset").click()
    await expect(page).to_have_url(re.compile(r"#/datasets$"))
    await expect(page.locator("#datasets-empty")).to_be_visible()
    assert (await api_get(full_stack, user, "/v1/datasets"))["items"] == []


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
