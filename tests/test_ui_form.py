"""The new-job form in a real browser (Debian's chromium driven by Playwright) against the real local stack: a
catalog model and an uploaded dataset picked, the prediction set and the estimate previewed, errors by field."""

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect
from ui_support import (
    admin_fixture,  # noqa: F401  fixture
    api_get,
    api_post,
    api_upload,
    browser_fixture,  # noqa: F401  fixture
    catalog_model,
    estimate_figure,
    main_nav,
    page_fixture,  # noqa: F401  fixture
    publish_screenshot,
    screenshot_path,
    sign_in,
    write_dataset,
)

pytestmark = pytest.mark.stack


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
        for name in ("steps", "train_tokens"):  # the whole job's training, beside the rounds
            shown = f"{estimate['training'][name]:,}"
            await expect(page.locator(f"#estimate-training-{name.split('_')[-1]}")).to_have_text(shown)
        share = f"{estimate['predictions_share'] * 100:.{1 if estimate['predictions_share'] < 0.01 else 0}f}%"
        await expect(page.locator("#estimate-predictions-share")).to_have_text(f"{share} of this job's time")
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
