"""Verdicts and preference pairs in a real browser: a prediction marked bad with a note and a correction in the
sample view (the API then holds that verdict, and the timeline's `human` grader shows it), and the job page's
button building preference pairs and linking to the new dataset with its provenance."""

import uuid
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from api_rows import auth
from playwright.async_api import Page, expect
from test_api_timeline import timeline_job
from test_preference_pairs import chat_rows, pairs_job
from ui_support import (
    admin_fixture,  # noqa: F401  fixture
    browser_fixture,  # noqa: F401  fixture
    page_fixture,  # noqa: F401  fixture
    sign_in,
)

pytestmark = pytest.mark.stack


async def test_a_prediction_is_judged_in_the_sample_view_and_read_as_the_human_grader(
    full_stack: Any, admin: asyncpg.Connection, page: Page
) -> None:
    job_id = await timeline_job(admin, "vera-ui", str(uuid.uuid4()))
    await sign_in(page, full_stack.api_url, full_stack.mint_token("vera-ui"))
    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{job_id}/compare?sample=row-000002")
    card = page.locator('article.round-card[data-round-index="1"]')
    await card.locator(".verdict-note").fill("not a booking")
    await card.locator(".verdict-correction").fill('{"city": "Oslo"}')
    await card.locator(".verdict-bad").click()
    await expect(card.locator(".verdict-status")).to_have_text("saved")
    await expect(card.locator(".verdict-bad")).to_have_attribute("aria-pressed", "true")
    good_card = page.locator('article.round-card[data-round-index="3"]')
    await good_card.locator(".verdict-good").click()
    await expect(good_card.locator(".verdict-status")).to_have_text("saved")

    async with httpx.AsyncClient(
        base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "vera-ui")
    ) as client:
        verdicts = (await client.get(f"/v1/jobs/{job_id}/verdicts")).json()["items"]
    assert [(v["round_index"], v["good"], v["note"], v["correction"]) for v in verdicts] == [
        (1, False, "not a booking", '{"city": "Oslo"}'),
        (3, True, None, None),
    ]

    await page.reload()  # the saved verdict comes back into the controls
    await expect(card.locator(".verdict-bad")).to_have_attribute("aria-pressed", "true")
    await expect(card.locator(".verdict-correction")).to_have_value('{"city": "Oslo"}')

    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{job_id}/timeline")
    await page.locator("#timeline-grader").select_option("human")
    cells = page.locator('#timeline-grid table tr[data-sample="row-000002"] td')
    await expect(cells).to_have_text(["·", "✗", "·", "✓"])  # "·": not judged in that round


async def test_the_job_page_builds_preference_pairs_and_links_to_them(
    full_stack: Any, admin: asyncpg.Connection, page: Page
) -> None:
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "pia-ui")) as client:
        upload = b"".join(orjson.dumps(row) + b"\n" for row in chat_rows())
        samples = (await client.post("/v1/datasets", files={"file": ("cities.jsonl", upload)})).json()
    job_id = await pairs_job(admin, "pia-ui", samples["dataset_id"])
    await sign_in(page, full_stack.api_url, full_stack.mint_token("pia-ui"))
    await page.goto(f"{full_stack.api_url}/ui/#/jobs/{job_id}")
    await page.locator("#pairs-grader").select_option("json")
    await page.locator("#build-pairs").click()
    await expect(page.locator("#pairs-status")).to_contain_text("6 pairs (1 regressions)")
    await page.locator("#pairs-dataset").click()
    await expect(page.locator("#dataset-provenance")).to_contain_text("6 preference pairs (1 regressions) from job")
    await expect(page.locator("#dataset-provenance")).to_contain_text("rounds 0, 1, 2: rejected failed json")
