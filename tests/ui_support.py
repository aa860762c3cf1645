"""Helpers of the UI tests (tests/test_ui.py): Debian's chromium under Playwright, the API as each user
sees it, and jobs with rounds, scores and progress inserted straight into Postgres as the administrator."""

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from epochscope_schemas.notify import job_channel

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REAL_JOB_TIMEOUT_MS = 150_000
VALIDATOR_BADGE = {True: "valid", False: "invalid", None: "—"}


def ensure_chromium() -> None:
    """Install Debian's chromium when it is missing (CI runs as root on a clean Debian machine); a normal
    user, who cannot install it, gets a skip that says how."""
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0:
        pytest.skip(f"{CHROMIUM} is missing; install Debian's chromium package (as root) to run the UI tests")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], check=True, env=env)


@pytest.fixture(scope="module", name="browser")
async def browser_fixture() -> AsyncIterator[Browser]:
    ensure_chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest.fixture(name="page")
async def page_fixture(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    refused: list[str] = []  # what the server's Content-Security-Policy blocked: the UI must need none of it
    opened.on("console", lambda message: "Content Security Policy" in message.text and refused.append(message.text))
    yield opened
    await context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
    assert not refused, f"the Content-Security-Policy refused: {refused}"


@pytest.fixture(name="admin")
async def admin_fixture(full_stack: Any) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(full_stack.postgres.admin_url)
    yield conn
    await conn.close()


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name


def publish_screenshot(name: str) -> None:
    """Refresh the README's copy only on request (EPOCHSCOPE_UPDATE_SCREENSHOTS=1): a test run leaves the tree clean."""
    if os.environ.get("EPOCHSCOPE_UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SCREENSHOTS / name, DOCS_SCREENSHOTS / name)


async def api_get(full_stack: Any, user: str, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        response = await client.get(
            path, params=params, headers={"Authorization": f"Bearer {full_stack.mint_token(user)}"}
        )
    assert response.status_code == 200, response.text
    return response.json()


async def api_post(full_stack: Any, user: str, path: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        response = await client.post(
            path, json=body, headers={"Authorization": f"Bearer {full_stack.mint_token(user)}"}
        )
    assert response.status_code == 200, response.text
    return response.json()


async def api_upload(full_stack: Any, user: str, path: Path) -> Any:
    """POST /v1/datasets with the file as its one multipart part; the Dataset the API made."""
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=120) as client:
        response = await client.post(
            "/v1/datasets",
            files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
            headers={"Authorization": f"Bearer {full_stack.mint_token(user)}"},
        )
    assert response.status_code == 201, response.text
    return response.json()


async def api_delete(full_stack: Any, user: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        return await client.delete(path, headers={"Authorization": f"Bearer {full_stack.mint_token(user)}"})


async def catalog_model(full_stack: Any, user: str, tiny_model_dir: Path | None = None) -> dict[str, Any]:
    """The catalog entry a test trains with: the tiny model's when asked for, else the first entry. The test stack's
    catalog must list the tiny model, or a form-submitted job would train SmolLM2."""
    models = (await api_get(full_stack, user, "/v1/models"))["items"]
    assert models, "GET /v1/models lists no model"
    if tiny_model_dir is None:
        return models[0]
    tiny = [model for model in models if "tiny" in model["id"]]  # users see no `source`
    assert tiny, f"the test stack's catalog has no entry for the tiny model ({tiny_model_dir}): {models}"
    return tiny[0]


async def sign_in(page: Page, api_url: str, token: str) -> None:
    await page.goto(f"{api_url}/ui/")
    await page.get_by_label("Bearer token").fill(token)
    await page.get_by_role("button", name=re.compile("^Sign in")).click()
    await expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()


def main_nav(page: Page, name: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


# ---- data inserted as the administrator, the way the writer stores it


def sample_text(sample: int) -> tuple[str, str]:
    prompt = f"Book a room in city number {sample} for {sample + 1} nights, and answer with a JSON booking please."
    truth = json.dumps({"city": f"City{sample}", "country": "FR", "nights": sample + 1})
    return prompt, truth


def prediction_text(sample: int, round_index: int) -> str:
    """Predictions that converge on the ground truth round by round (so diffs have something to show)."""
    if round_index == 0:
        return f"I think the city is City{sample} maybe"
    if round_index == 1:
        return json.dumps({"city": f"City{sample}", "nights": sample})
    return sample_text(sample)[1]


def progress_document(step: int, epoch: float, loss: float) -> dict[str, Any]:
    """jobs.progress as the writer stores it: the latest progress event's fields."""
    return {
        "step": step,
        "max_steps": 40,
        "epoch": epoch,
        "num_epochs": 4,
        "loss": loss,
        "learning_rate": 0.0002,
        "samples_per_second": 12.0,
        "occurred_at": datetime.now(UTC).isoformat(),
    }


async def insert_job(
    admin: asyncpg.Connection,
    owner: str,
    samples: int,
    status: str = "running",
    dataset_id: uuid.UUID | str | None = None,
) -> uuid.UUID:
    """A job row as the API and the writer leave it; with `dataset_id`, the job reads that dataset (job_datasets)."""
    job_id = uuid.uuid4()
    config = {
        "model": "tiny-inserted",
        "dataset_id": str(dataset_id or uuid.uuid4()),
        "num_epochs": 4,
        "batch_size": 4,
        "predictions": {"enabled": True, "sample_count": samples, "validators": [{"kind": "json_parse"}]},
    }
    progress = progress_document(step=20, epoch=2.0, loss=1.9)
    await admin.execute(
        "INSERT INTO jobs (job_id, owner_id, config, status, token_expires_at, progress, started_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, now())",
        job_id,
        owner,
        json.dumps(config),
        status,
        datetime.now(UTC) + timedelta(hours=1),
        json.dumps(progress),
    )
    if dataset_id is not None:
        await admin.execute(
            "INSERT INTO job_datasets (job_id, dataset_id, owner_id, role) VALUES ($1, $2, $3, 'train')",
            job_id,
            uuid.UUID(str(dataset_id)),
            owner,
        )
    await admin.executemany(
        "INSERT INTO job_progress (job_id, step, owner_id, max_steps, epoch, loss, learning_rate, occurred_at)"
        " VALUES ($1, $2, $3, 40, $4, $5, 0.0002, now())",
        [(job_id, step, owner, step / 10, 3.0 - step * 0.055) for step in range(2, 21, 2)],
    )
    return job_id


async def insert_round(
    admin: asyncpg.Connection, job_id: uuid.UUID, owner: str, round_index: int, samples: int, summarized: bool = True
) -> None:
    """One round's predictions and its summary (none while `summarized` is false: the round is in progress),
    committed and announced the way the writer does it."""
    step = (round_index + 1) * 10
    epoch = float(round_index + 1)
    rows = []
    for sample in range(samples):
        prompt, truth = sample_text(sample)
        prediction = prediction_text(sample, round_index)
        try:
            json.loads(prediction)
            valid, error = True, None
        except ValueError:
            valid, error = False, "not valid JSON: Expecting value at line 1 column 1"
        exact = 1.0 if prediction == truth else 0.0
        f1 = {0: 0.2, 1: 0.7}.get(round_index, 1.0)
        rows.append(
            (job_id, step, f"row-{sample:06d}", owner, round_index, epoch, sample, prompt, truth, prediction)
            + (len(prediction.split()), valid, error, exact, f1, f1 - 0.05, uuid.uuid4())
        )
    passed = sum(1 for row in rows if row[11])
    async with admin.transaction():
        await admin.executemany(
            "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,"
            " prompt, ground_truth, prediction, tokens_generated, valid, validation_error, exact_match, f1, rouge_l,"
            " event_id, latency_ms, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,"
            " $14, $15, $16, $17, 12.5, now())",
            rows,
        )
        if not summarized:
            await admin.execute("SELECT pg_notify($1, $2)", job_channel(job_id), json.dumps({"kind": "predictions"}))
            return
        await admin.execute(
            "INSERT INTO job_rounds (job_id, round_index, owner_id, epoch, step, trigger, predictions, validated,"
            " valid, scored, mean_exact_match, mean_f1, mean_rouge_l, tokens_generated, wall_ms, stall_ms, occurred_at)"
            " VALUES ($1, $2, $3, $4, $5, 'epoch', $6, $6, $7, $6, $8, $9, $10, $11, 900, 850, now())",
            job_id,
            round_index,
            owner,
            epoch,
            step,
            samples,
            passed,
            sum(row[13] for row in rows) / samples,
            sum(row[14] for row in rows) / samples,
            sum(row[15] for row in rows) / samples,
            sum(row[10] for row in rows),
        )
        for kind in ("predictions", "round"):
            await admin.execute("SELECT pg_notify($1, $2)", job_channel(job_id), json.dumps({"kind": kind}))


async def finish_job(admin: asyncpg.Connection, job_id: uuid.UUID) -> None:
    async with admin.transaction():
        await admin.execute(
            "UPDATE jobs SET status = 'completed', finished_at = now(), updated_at = now(), metrics = $2,"
            " progress = $3 WHERE job_id = $1",
            job_id,
            json.dumps({"train_loss": 1.23}),
            json.dumps(progress_document(step=40, epoch=4.0, loss=1.2)),
        )
        await admin.execute("SELECT pg_notify($1, $2)", job_channel(job_id), json.dumps({"kind": "status"}))


def write_dataset(path: Path, rows: int = 8) -> Path:
    with path.open("w") as handle:
        for i in range(rows):
            messages = [
                {"role": "user", "content": f"What is {i} plus {i}? Answer in JSON."},
                {"role": "assistant", "content": json.dumps({"answer": i + i})},
            ]
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path


def write_malformed_dataset(path: Path) -> tuple[Path, dict[int, str]]:
    """Good chat rows with a few bad lines planted among them; returns the file and {line number: what is wrong}."""
    bad = {3: "{not json", 6: json.dumps({"messages": "not a list"}), 9: json.dumps({"unrelated": 1})}
    with path.open("w") as handle:
        for line in range(1, 13):
            if line in bad:
                handle.write(bad[line] + "\n")
                continue
            messages = [
                {"role": "user", "content": f"Row {line}: say the number {line} as JSON."},
                {"role": "assistant", "content": json.dumps({"number": line})},
            ]
            handle.write(json.dumps({"messages": messages}) + "\n")
    return path, bad


async def estimate_figure(page: Page, name: str) -> str:
    return (await page.locator(f"#estimate-{name}").text_content() or "").strip()
