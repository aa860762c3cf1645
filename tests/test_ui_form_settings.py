"""The job form reaches every job setting, in a real browser against the real local stack: a job submitted with
each setting set (SFT, GRPO and DPO), its stored config read back from GET /v1/jobs/{id}; errors beside the
grader or method field they name; the "try it" box scoring through POST /v1/graders/run. "New job from this one"
is tests/test_ui_form_clone.py."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect
from ui_support import (
    admin_fixture,  # noqa: F401  fixture
    api_delete,
    api_get,
    api_post,
    api_upload,
    browser_fixture,  # noqa: F401  fixture
    catalog_model,
    main_nav,
    page_fixture,  # noqa: F401  fixture
    publish_screenshot,
    screenshot_path,
    sign_in,
    write_dataset,
)

pytestmark = pytest.mark.stack


def assert_holds(stored: Any, expected: Any, path: str = "config") -> None:
    """Every value of `expected` is in `stored` at the same place (dicts compared key by key, the rest exactly)."""
    if isinstance(expected, dict):
        assert isinstance(stored, dict), f"{path}: {stored!r} is not an object"
        for key, value in expected.items():
            assert key in stored, f"{path}.{key} is missing from {stored!r}"
            assert_holds(stored[key], value, f"{path}.{key}")
    else:
        assert stored == expected, f"{path}: stored {stored!r}, expected {expected!r}"


async def submitted_job(page: Page, full_stack: Any, user: str) -> dict[str, Any]:
    """Create the job the form holds; the job as the API stores it (the page has moved to it)."""
    await page.get_by_role("button", name="Create job").click()
    await expect(page).to_have_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"), timeout=30_000)
    job_id = page.url.rsplit("/", 1)[-1]
    return await api_get(full_stack, user, f"/v1/jobs/{job_id}")


async def add_grader(page: Page, grader_type: str, name: str) -> Locator:
    await page.locator("#add-grader-type").select_option(grader_type)
    await page.get_by_role("button", name="Add grader").click()
    grader = page.locator(f"#{await page.locator('fieldset.grader').last.get_attribute('id')}")  # not `.last` later
    await grader.get_by_label("Name", exact=True).fill(name)
    return grader


async def open_form(page: Page) -> None:
    await main_nav(page, "New job").click()
    await expect(page.get_by_role("heading", name="New fine-tuning job")).to_be_visible()
    await expect(page.get_by_label("Model", exact=True)).not_to_have_value("")  # the catalog is loaded


async def test_a_job_with_every_setting_is_stored_as_the_form_set_it(
    full_stack: Any, tmp_path: Path, page: Page
) -> None:
    user = "every-setting"
    model = await catalog_model(full_stack, user)
    train = await api_upload(full_stack, user, write_dataset(tmp_path / "train.jsonl", rows=40))
    evals = await api_upload(full_stack, user, write_dataset(tmp_path / "eval.jsonl", rows=12))
    samples = await api_upload(full_stack, user, write_dataset(tmp_path / "samples.jsonl", rows=20))
    limits = await api_get(full_stack, user, "/v1/limits")
    await sign_in(page, full_stack.api_url, full_stack.mint_token(user))
    await open_form(page)

    # Name and tags: three added, one removed.
    await page.get_by_label("Job name").fill("sums, every setting")
    for key, value in [("team", "evals"), ("drop", "me"), ("sweep", "lr=1e-3")]:
        await page.get_by_role("button", name="Add a tag").click()
        await page.get_by_label("Tag key").last.fill(key)
        await page.get_by_label("Tag value").last.fill(value)
    await page.locator(".metadata-row").nth(1).get_by_role("button", name="Remove this tag").click()
    # Training.
    await page.get_by_label("Training dataset").select_option(train["dataset_id"])
    await page.get_by_label("Epochs").fill("2")
    await page.get_by_label("Batch size").fill("4")
    await page.get_by_label("Learning rate").fill("0.001")
    await page.get_by_label("Max sequence length").fill("256")
    await page.get_by_label("Eval dataset (optional)").select_option(evals["dataset_id"])
    await page.get_by_label("LoRA rank (r)").fill("4")
    await page.get_by_label("LoRA alpha").fill("8")
    await page.get_by_label("LoRA dropout").fill("0.1")
    await page.get_by_label("LoRA target modules").fill("q_proj, v_proj")
    # SFT on the last assistant turn.
    await page.get_by_label("Assistant turns (with answers only)").select_option("last")
    # Predictions: every round setting.
    slider = page.get_by_label(re.compile("^Sample count"))
    await slider.focus()
    for _ in range(4):
        await slider.press("ArrowRight")
    await page.get_by_label(re.compile("At every evaluation")).check()
    await page.get_by_label("Max new tokens").fill("32")
    await page.get_by_label("Temperature", exact=True).fill("0.5")
    await page.get_by_label("Top-p").fill("0.9")
    await page.get_by_label("Prediction set (optional)").select_option(samples["dataset_id"])
    await page.get_by_label("Sampling seed").fill("7")
    await page.get_by_label(re.compile("baseline")).uncheck()
    await page.get_by_label(re.compile("in the background")).check()
    # Graders: each type with its options; one added then removed.
    check = await add_grader(page, "string_check", "says_answer")
    await check.get_by_label("Operation").select_option("contains")
    await check.get_by_label("Reference (optional)").fill("answer")
    await check.get_by_label("Case sensitive").uncheck()
    regex = await add_grader(page, "regex", "digits")
    await regex.get_by_label("Pattern (RE2)").fill(r"\d+")
    await regex.get_by_label("Match the whole answer").check()
    field = await add_grader(page, "json_field", "answer_field")
    await field.get_by_label("Field path").fill("answer")
    await field.get_by_label("Passes at score").fill("0.5")
    similar = await add_grader(page, "text_similarity", "rouge")
    await similar.get_by_label("Metric").select_option("rouge_l")
    await similar.get_by_label("Reference field").fill("label")
    schema = await add_grader(page, "json_schema", "shape")
    await schema.get_by_label("JSON Schema").fill('{"type": "object", "required": ["answer"]}')
    extra = await add_grader(page, "json_parse", "is_json")
    await extra.get_by_role("button", name="Remove grader is_json").click()
    await expect(page.locator("fieldset.grader")).to_have_count(5)
    # Checkpoints and stop_when, on the graders' metrics.
    await page.get_by_label("Keep weights of").select_option("best")
    await page.get_by_label("Best by").select_option("grader_pass_rate:digits")
    await page.get_by_label("How many best").fill("2")
    await page.get_by_label("Stop training").select_option("patience")
    await page.get_by_label("Judged by").select_option("grader_mean:says_answer")
    await page.get_by_label("Rounds without improvement").fill("3")
    await expect(page.locator("#estimate-status")).to_contain_text("generated tokens/s")  # the estimate is in
    await page.screenshot(path=screenshot_path("form_graders.png"), full_page=True)
    publish_screenshot("form_graders.png")

    # A grader error lands beside its field: an RE2-unsafe pattern (lookahead).
    await regex.get_by_label("Pattern (RE2)").fill(r"\d+(?=x)")
    await page.get_by_role("button", name="Create job").click()
    await expect(regex.locator('[data-loc$=".pattern"] > .field-error')).to_contain_text("linear time")
    await expect(page.locator("#form-errors")).to_be_focused()
    await regex.get_by_label("Pattern (RE2)").fill(r"\d+")

    job = await submitted_job(page, full_stack, user)
    graders = [
        {"type": "string_check", "name": "says_answer", "operation": "contains", "reference": "answer"}
        | {"case_sensitive": False, "threshold": 1.0, "reference_field": "ground_truth"},
        {"type": "regex", "name": "digits", "pattern": r"\d+", "full_match": True, "case_sensitive": True},
        {"type": "json_field", "name": "answer_field", "path": "answer", "threshold": 0.5},
        {"type": "text_similarity", "name": "rouge", "metric": "rouge_l", "threshold": 0.5, "reference_field": "label"},
        {"type": "json_schema", "name": "shape", "json_schema": {"type": "object", "required": ["answer"]}},
    ]
    assert_holds(
        job,
        {
            "name": "sums, every setting",
            "metadata": {"team": "evals", "sweep": "lr=1e-3"},
            "config": {
                "model": model["id"],
                "dataset_id": train["dataset_id"],
                "eval_dataset_id": evals["dataset_id"],
                "eval_fraction": None,
                "num_epochs": 2,
                "batch_size": 4,
                "learning_rate": 0.001,
                "max_length": 256,
                "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]},
                "method": {"type": "sft", "train_on": "answers", "assistant_turns": "last"},
                "predictions": {
                    "enabled": True,
                    "sample_count": 12,
                    "sample_frequency": "eval",
                    "samples_dataset_id": samples["dataset_id"],
                    "seed": 7,
                    "max_new_tokens": 32,
                    "temperature": 0.5,
                    "top_p": 0.9,
                    "baseline_round": False,
                    "background": True,
                    "checkpoints": {"mode": "best", "metric": "grader_pass_rate:digits", "keep": 2},
                    "stop_when": {"metric": "grader_mean:says_answer", "patience": 3, "threshold": None},
                },
            },
        },
    )
    assert len(job["config"]["predictions"]["graders"]) == len(graders)
    for stored, expected in zip(job["config"]["predictions"]["graders"], graders, strict=True):
        assert_holds(stored, expected)
    assert job["metadata"] == {"team": "evals", "sweep": "lr=1e-3"}  # the removed tag is gone
    assert (await api_delete(full_stack, user, f"/v1/jobs/{job['job_id']}")).status_code == 204

    # GRPO: rewards as weighted graders, every setting; a server limit lands beside its field first.
    await open_form(page)
    await page.get_by_label("Training dataset").select_option(train["dataset_id"])
    await page.get_by_label("Batch size").fill("4")
    correct = await add_grader(page, "string_check", "correct")
    await correct.get_by_label("Operation").select_option("contains")
    await add_grader(page, "json_parse", "json_ok")
    await page.get_by_label("Training method").select_option("grpo")
    await page.get_by_label("Weight", exact=True).first.fill("2")
    await page.get_by_role("button", name="Add reward").click()
    await page.get_by_label("Reward grader").last.select_option("json_ok")
    await page.get_by_label("Weight", exact=True).last.fill("0.5")
    too_many = limits["grpo_max_num_generations"] + 1
    await page.get_by_label("Generations per prompt").fill(str(too_many))
    await page.get_by_label("Batch size").fill(str(too_many))  # whole groups: only the server limit is broken
    await page.get_by_role("button", name="Create job").click()
    await expect(page.locator("#num-generations-error")).to_contain_text(
        f"at most {limits['grpo_max_num_generations']}"
    )
    await page.get_by_label("Generations per prompt").fill("2")
    await page.get_by_label("Batch size").fill("4")
    await page.get_by_label("Max completion tokens").fill("16")
    await page.get_by_label("Sampling temperature").fill("0.8")
    await page.get_by_label("KL penalty (beta)").fill("0.05")
    await page.locator("#grpo-max-steps").fill("3")
    await page.get_by_label("Rollouts kept").select_option("all")
    await page.get_by_label("Rollouts per step (sample)").fill("4")
    await page.get_by_label("Rollout sample seed").fill("1")
    await page.get_by_label("Divergence window (steps)").fill("4")
    await page.get_by_label("Divergence min change").fill("0.3")
    job = await submitted_job(page, full_stack, user)
    assert_holds(
        job["config"]["method"],
        {
            "type": "grpo",
            "rewards": [{"grader": "correct", "weight": 2.0}, {"grader": "json_ok", "weight": 0.5}],
            "num_generations": 2,
            "max_completion_length": 16,
            "temperature": 0.8,
            "beta": 0.05,
            "max_steps": 3,
            "rollouts": {"log": "all", "per_step": 4, "seed": 1},
            "reward_divergence": {"window": 4, "min_change": 0.3},
        },
    )
    assert [grader["name"] for grader in job["config"]["predictions"]["graders"]] == ["correct", "json_ok"]
    assert (await api_delete(full_stack, user, f"/v1/jobs/{job['job_id']}")).status_code == 204

    # DPO: beta and max_steps, on preference rows (a DPO job on the chat rows above is a 422).
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text(
        "".join(
            json.dumps({"prompt": f"What is {i} + {i}?", "chosen": str(2 * i), "rejected": str(2 * i + 1)}) + "\n"
            for i in range(12)
        )
    )
    pairs = await api_upload(full_stack, user, pairs_file)
    await open_form(page)
    await page.get_by_label("Training dataset").select_option(pairs["dataset_id"])
    await page.get_by_label("Training method").select_option("dpo")
    await page.get_by_label("DPO beta").fill("0.2")
    await page.locator("#dpo-max-steps").fill("5")
    job = await submitted_job(page, full_stack, user)
    assert job["config"]["method"] == {"type": "dpo", "beta": 0.2, "max_steps": 5}
    assert (await api_delete(full_stack, user, f"/v1/jobs/{job['job_id']}")).status_code == 204


async def test_try_it_scores_a_sample_answer_with_the_chosen_grader_as_the_api_does(
    full_stack: Any, tmp_path: Path, page: Page
) -> None:
    user = "try-it"
    await api_upload(full_stack, user, write_dataset(tmp_path / "train.jsonl", rows=8))
    await sign_in(page, full_stack.api_url, full_stack.mint_token(user))
    await open_form(page)
    await expect(page.get_by_role("button", name="Score it")).to_be_disabled()  # no grader yet
    check = await add_grader(page, "string_check", "mentions")
    await check.get_by_label("Operation").select_option("contains")
    await check.get_by_label("Case sensitive").uncheck()
    similar = await add_grader(page, "text_similarity", "close")

    async def tried(grader: str, answer: str, reference: str) -> None:
        await page.get_by_label("Grader", exact=True).select_option(grader)
        await page.get_by_label("Sample answer").fill(answer)
        await page.get_by_label("Reference", exact=True).fill(reference)
        await page.get_by_role("button", name="Score it").click()

    await tried("mentions", "The ANSWER is 8", "answer is 8")
    await expect(page.locator("#try-verdict")).to_have_text("Passes")
    await expect(page.locator("#try-score")).to_have_text("1")

    # The same verdict as POST /v1/graders/run on that grader, a score strictly between 0 and 1.
    await similar.get_by_label("Passes at score").fill("0.9")
    await tried("close", "the cat sat on a mat", "a cat sat on the red mat")
    body = {
        "grader": {"type": "text_similarity", "name": "close", "metric": "f1", "threshold": 0.9},
        "answer": "the cat sat on a mat",
        "references": {"ground_truth": "a cat sat on the red mat"},
    }
    verdict = await api_post(full_stack, user, "/v1/graders/run", body)
    assert 0 < verdict["score"] < 0.9 and not verdict["passed"]
    await expect(page.locator("#try-verdict")).to_have_text("Fails")
    await expect(page.locator("#try-score")).to_have_text(f"{round(verdict['score'], 3):g}")

    # A grader the server refuses says why; a renamed grader is offered under its new name.
    await check.get_by_label("Name", exact=True).fill("mentions-it")
    await check.get_by_label("Type").select_option("regex")
    await check.get_by_label("Pattern (RE2)").fill("(a)\\1")
    await tried("mentions-it", "aa", "")
    await expect(page.locator("#try-result .error")).to_contain_text("pattern")
