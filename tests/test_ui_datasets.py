"""The Datasets page in a real browser (Debian's chromium driven by Playwright) against the real local stack:
upload with a progress bar, the validation report, malformed lines, refusals explained, row pages, delete."""

import re
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from conftest import UPLOAD_MAX_BYTES
from playwright.async_api import Page, expect
from ui_support import (
    admin_fixture,  # noqa: F401  fixture
    api_delete,
    api_get,
    api_upload,
    browser_fixture,  # noqa: F401  fixture
    finish_job,
    insert_job,
    main_nav,
    page_fixture,  # noqa: F401  fixture
    publish_screenshot,
    screenshot_path,
    sign_in,
    write_dataset,
    write_malformed_dataset,
)

pytestmark = pytest.mark.stack


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
    # Per training method: its usable rows and each reason the others are not, with their first lines.
    assert set(report["methods"]) == {"sft", "dpo", "grpo"} and report["methods"]["dpo"]["usable"] == 0
    for method, rows in report["methods"].items():
        row = result.locator(f'#method-rows tr[data-method="{method}"]')
        await expect(row.locator("td.num")).to_have_text(str(rows["usable"]))
        for reason, unusable in rows["unusable"].items():
            await expect(row).to_contain_text(f"{reason}: {unusable['rows']}")
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

    # Too large: a real file over the stack's upload limit (2 MiB), refused by the server with its 413's reason.
    big = tmp_path / "big.jsonl"
    line = (useless.read_text().splitlines()[0] + "\n").encode()
    big.write_bytes(line * (UPLOAD_MAX_BYTES // len(line) + 1000))
    await upload_through_the_page(page, big)
    await expect(page.locator("#upload-error")).to_have_text(
        f"The file is too large: the upload exceeds the limit of {UPLOAD_MAX_BYTES} bytes (2 MiB)"
    )
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
