""" "New job from this one" in a real browser against the real local stack: a job created through the API with a
setting changed from every default opens the form filled with its whole config; one setting changed and submitted,
the new job's stored config is the first one's but that setting."""

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect
from test_ui_form_settings import submitted_job
from ui_support import (
    admin_fixture,  # noqa: F401  fixture
    api_delete,
    api_get,
    api_upload,
    browser_fixture,  # noqa: F401  fixture
    catalog_model,
    page_fixture,  # noqa: F401  fixture
    publish_screenshot,
    screenshot_path,
    sign_in,
    write_dataset,
)

pytestmark = pytest.mark.stack


async def test_new_job_from_this_one_fills_every_setting_and_submits_one_change(
    full_stack: Any, tmp_path: Path, page: Page
) -> None:
    user = "cloner"
    model = await catalog_model(full_stack, user)
    train = await api_upload(full_stack, user, write_dataset(tmp_path / "train.jsonl", rows=24))
    samples = await api_upload(full_stack, user, write_dataset(tmp_path / "samples.jsonl", rows=12))
    config = {
        "name": "grpo run 1",
        "metadata": {"sweep": "beta", "owner": "cloner"},
        "model": model["id"],
        "dataset_id": train["dataset_id"],
        "num_epochs": 2,
        "batch_size": 6,
        "learning_rate": 0.0005,
        "max_length": 128,
        "eval_fraction": 0.25,
        "lora": {"r": 2, "alpha": 4, "dropout": 0.05, "target_modules": ["q_proj"]},
        "method": {
            "type": "grpo",
            "rewards": [
                {"grader": "digits", "weight": 3.0},
                {"grader": {"type": "json_parse", "name": "inline_json"}, "weight": 1.0},
            ],
            "num_generations": 3,
            "max_completion_length": 20,
            "temperature": 0.7,
            "beta": 0.1,
            "max_steps": 4,
            "rollouts": {"log": "sample", "per_step": 5, "seed": 9},
            "reward_divergence": {"window": 3, "min_change": 0.25},
        },
        "predictions": {
            "enabled": True,
            "sample_count": 5,
            "sample_frequency": "steps",
            "step_interval": 20,
            "samples_dataset_id": samples["dataset_id"],
            "seed": 3,
            "max_new_tokens": 24,
            "temperature": 0.2,
            "top_p": 0.8,
            "baseline_round": False,
            "graders": [
                {"type": "regex", "name": "digits", "pattern": "[0-9]+", "case_sensitive": False},
                {"type": "json_field", "name": "answer", "path": "answer", "threshold": 0.5},
                {"type": "text_similarity", "name": "chrf", "metric": "chrf", "reference_field": "label"},
            ],
            "checkpoints": {"mode": "best", "metric": "grader_mean:answer", "keep": 3},
            "stop_when": {"metric": "grader_pass_rate:digits", "threshold": 0.8, "rounds": 2},
        },
    }
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        created = await client.post(
            "/v1/jobs", json=config, headers={"Authorization": f"Bearer {full_stack.mint_token(user)}"}
        )
    assert created.status_code == 201, created.text
    original = await api_get(full_stack, user, f"/v1/jobs/{created.json()['job_id']}")

    await sign_in(page, full_stack.api_url, full_stack.mint_token(user))
    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{original['job_id']}")
    await page.get_by_role("link", name="New job from this one").click()
    await expect(page.locator("#clone-note")).to_contain_text("Filled from job grpo run 1")
    await expect(page.locator("fieldset.grader")).to_have_count(3)
    await expect(page.get_by_label("Training method")).to_have_value("grpo")
    await page.screenshot(path=screenshot_path("form_clone.png"), full_page=True)
    publish_screenshot("form_clone.png")
    await page.get_by_label("KL penalty (beta)").fill("0.2")  # the one change
    clone = await submitted_job(page, full_stack, user)

    assert clone["job_id"] != original["job_id"]
    expected = original["config"]
    expected["method"]["beta"] = 0.2
    assert clone["config"] == expected
    for job in (original, clone):
        assert (await api_delete(full_stack, user, f"/v1/jobs/{job['job_id']}")).status_code == 204
