"""The API against the real local stack: fuzzing, the cross-user matrix, live pagination, the SSE stream.

Jobs here are inserted straight into Postgres as the administrator (no start event), so no trainer
picks them up; predictions are inserted the same way, each followed by the writer's NOTIFY.
"""

import asyncio
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from api_rows import (
    admin_fixture,  # noqa: F401  fixture
    auth,
    delivered,
    insert_job,
    insert_progress,
    insert_round,
    insert_summary,
    insert_warning,
    notify,
    read_stream,
)
from conftest import ARTIFACTS

pytestmark = pytest.mark.stack


async def test_another_users_job_is_404_on_every_endpoint(full_stack: Any, admin: asyncpg.Connection) -> None:
    job_id = await insert_job(admin, "alice")
    await insert_round(admin, job_id, "alice", step=1)
    requests = [
        ("GET", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/predictions"),
        ("GET", f"/v1/jobs/{job_id}/rounds"),
        ("GET", f"/v1/jobs/{job_id}/samples/row-000000"),
        ("GET", f"/v1/jobs/{job_id}/progress"),
        ("GET", f"/v1/jobs/{job_id}/stream"),
        ("POST", f"/v1/jobs/{job_id}/cancel"),
        ("DELETE", f"/v1/jobs/{job_id}"),
    ]
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        for method, path in requests:
            assert (await client.request(method, path, headers=auth(full_stack, "bob"))).status_code == 404, path
            assert (await client.request(method, path)).status_code == 401, path
        listed = (await client.get("/v1/jobs", headers=auth(full_stack, "bob"), params={"limit": 500})).json()
        assert str(job_id) not in {job["job_id"] for job in listed["items"]}
        for method, path in requests[:5]:  # and the owner still sees everything: the 404s were not vacuous
            assert (await client.request(method, path, headers=auth(full_stack, "alice"))).status_code == 200, path


async def test_pagination_returns_every_row_once_while_rows_are_inserted(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    job_id = await insert_job(admin, "pager")
    rounds = 40

    async def insert_rounds() -> None:
        for step in range(1, rounds + 1):
            await insert_round(admin, job_id, "pager", step=step, samples=5)
            await asyncio.sleep(0.01)

    seen: list[tuple[int, str]] = []
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "pager")) as client:
        inserter = asyncio.create_task(insert_rounds())
        cursor = None
        while not (inserter.done() and seen and len(seen) >= rounds * 5):
            params = {"limit": 7} | ({"cursor": cursor} if cursor else {})
            page = (await client.get(f"/v1/jobs/{job_id}/predictions", params=params)).json()
            seen += [(row["step"], row["sample_id"]) for row in page["items"]]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                await asyncio.sleep(0.02)
        await inserter
    assert len(seen) == len(set(seen)) == rounds * 5
    assert seen == sorted(seen)


async def test_stream_delivers_every_kind_of_row_and_resumes_without_gaps_or_repeats(
    full_stack: Any, admin: asyncpg.Connection
) -> None:
    job_id = await insert_job(admin, "viewer")
    await insert_round(admin, job_id, "viewer", step=1)  # before the client connects
    url = f"/v1/jobs/{job_id}/stream"
    headers = auth(full_stack, "viewer")
    first_batch = Counter(prediction=6, round=1, progress=5, warning=1)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        first_task = asyncio.create_task(read_stream(client, url, headers, stop_at=first_batch))
        await asyncio.sleep(0.5)
        # After it connected, each kind announced on its own, the way the writer does it.
        await insert_round(admin, job_id, "viewer", step=2)
        await insert_summary(admin, job_id, "viewer", round_index=1)
        await insert_progress(admin, job_id, "viewer", range(0, 5))
        await insert_warning(admin, job_id, "viewer", "samples_missing")
        first, last_id = await asyncio.wait_for(first_task, 20)
        # Disconnected; more rows of every kind land, then the job ends.
        await insert_round(admin, job_id, "viewer", step=3)
        for round_index in (2, 3):
            await insert_summary(admin, job_id, "viewer", round_index)
        await insert_progress(admin, job_id, "viewer", range(5, 10))
        await insert_warning(admin, job_id, "viewer", "round_failed")
        await admin.execute("UPDATE jobs SET status = 'completed' WHERE job_id = $1", job_id)
        await notify(admin, job_id, "status")
        second, _ = await asyncio.wait_for(read_stream(client, url, headers | {"Last-Event-ID": last_id}, None), 20)

    before, after = delivered(first), delivered(second)
    assert {name: len(keys) for name, keys in before.items()} == dict(first_batch)
    predictions = before["prediction"] + after["prediction"]
    assert len(predictions) == len(set(predictions)) == 9
    assert sorted(step for step, _ in predictions) == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert before["round"] + after["round"] == [1, 2, 3]
    assert before["progress"] + after["progress"] == list(range(10))
    assert before["warning"] + after["warning"] == ["samples_missing", "round_failed"]
    assert second[-1] == {"event": "end", "data": "completed"}
    statuses = [json.loads(e["data"]) for e in first + second if e["event"] == "status"]
    assert statuses[0]["job_id"] == str(job_id) and statuses[-1]["status"] == "completed"


async def test_stream_refuses_a_foreign_last_event_id(full_stack: Any, admin: asyncpg.Connection) -> None:
    job_id = await insert_job(admin, "viewer")
    headers = auth(full_stack, "viewer") | {"Last-Event-ID": "12"}
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        response = await client.get(f"/v1/jobs/{job_id}/stream", headers=headers)
    assert response.status_code == 422
    assert "Last-Event-ID" in response.json()["detail"]


async def test_job_detail_has_progress_rounds_and_warnings(full_stack: Any, admin: asyncpg.Connection) -> None:
    job_id = await insert_job(admin, "reader")
    for step in (0, 1, 2):
        await insert_round(admin, job_id, "reader", step=step)
    for round_index in (0, 1):  # round 2 has no summary yet
        await insert_summary(admin, job_id, "reader", round_index)
    await insert_progress(admin, job_id, "reader", range(10))
    for code in ("samples_missing", "round_failed"):
        await insert_warning(admin, job_id, "reader", code)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "reader")) as client:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        rounds = (await client.get(f"/v1/jobs/{job_id}/rounds")).json()["items"]
        progress = (await client.get(f"/v1/jobs/{job_id}/progress")).json()
        tail = (await client.get(f"/v1/jobs/{job_id}/progress", params={"after_step": 4, "limit": 3})).json()
        listed = (await client.get("/v1/jobs")).json()["items"]
        page = (await client.get(f"/v1/jobs/{job_id}/predictions", params={"step": 2})).json()["items"]
        sample = (await client.get(f"/v1/jobs/{job_id}/samples/row-000000")).json()

    assert job["status"] == "running"
    assert job["progress"]["step"] == 9 and job["progress"]["max_steps"] == 100
    assert job["progress"]["loss"] == pytest.approx(0.2)
    assert [w["code"] for w in job["warnings"]] == ["samples_missing", "round_failed"]
    assert job["rounds"] == rounds
    assert [(r["round_index"], r["summarized"]) for r in rounds] == [(0, True), (1, True), (2, False)]
    summarized, in_progress = rounds[1], rounds[2]
    assert summarized | {"occurred_at": None} == {
        "round_index": 1,
        "epoch": 1.0,
        "step": 1,
        "trigger": "epoch",
        "summarized": True,
        "predictions": 8,
        "validated": 8,
        "valid": 6,
        "validator_pass_rate": 0.75,
        "scored": 8,
        "mean_exact_match": 0.125,
        "mean_f1": 0.5,
        "mean_rouge_l": 0.25,
        "tokens": 64,
        "wall_ms": 1500.0,
        "stall_ms": 1400.0,
        "graders": {},
        "occurred_at": None,
    }
    # No summary yet: where the round is and how many predictions arrived, nothing judged again from the rows (they
    # are validated and scored: an API that aggregated them would show numbers here).
    assert in_progress | {"occurred_at": None} == {
        "round_index": 2,
        "epoch": 2.0,
        "step": 2,
        "trigger": None,
        "summarized": False,
        "predictions": 3,
        "validated": None,
        "valid": None,
        "validator_pass_rate": None,
        "scored": None,
        "mean_exact_match": None,
        "mean_f1": None,
        "mean_rouge_l": None,
        "tokens": None,
        "wall_ms": None,
        "stall_ms": None,
        "graders": None,
        "occurred_at": None,
    }
    assert [p["step"] for p in progress["items"]] == list(range(10)) and not progress["has_more"]
    assert progress["items"][0] | {"occurred_at": None} == {
        "step": 0,
        "max_steps": 100,
        "epoch": 0.0,
        "loss": 2.0,
        "learning_rate": 0.001,
        "samples_per_second": 12.5,
        "occurred_at": None,
        "reward": None,  # GRPO's reward per step: none for an SFT job
        "rewards": None,
        **dict.fromkeys(("chosen_reward", "rejected_reward", "reward_margin", "reward_accuracy")),  # DPO's: none
    }
    assert [p["step"] for p in tail["items"]] == [5, 6, 7] and tail["has_more"]
    assert next(item for item in listed if item["job_id"] == str(job_id))["progress"]["step"] == 9
    assert [(p["valid"], p["validation_error"], p["scores"]) for p in page] == [
        (True, None, {"exact_match": 1.0, "f1": 0.5, "rouge_l": 0.25}),
        (False, "not JSON", {"exact_match": 0.0, "f1": 0.5, "rouge_l": 0.25}),
        (True, None, {"exact_match": 0.0, "f1": 0.5, "rouge_l": 0.25}),
    ]
    assert [(r["step"], r["valid"], r["scores"]["exact_match"]) for r in sample["rounds"]] == [
        (0, True, 1.0),
        (1, True, 1.0),
        (2, True, 1.0),
    ]

    # Round 3 is summarized and round 2 never is: the gap is listed as before, still unjudged.
    await insert_round(admin, job_id, "reader", step=3)
    await insert_summary(admin, job_id, "reader", round_index=3)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "reader")) as client:
        rounds = (await client.get(f"/v1/jobs/{job_id}/rounds")).json()["items"]
    assert [(r["round_index"], r["summarized"]) for r in rounds] == [(0, True), (1, True), (2, False), (3, True)]
    assert rounds[2] == in_progress | {"occurred_at": rounds[2]["occurred_at"]}


async def test_delete_removes_the_job_and_everything_it_accumulated(full_stack: Any, admin: asyncpg.Connection) -> None:
    job_id = await insert_job(admin, "deleter", status="completed")
    await insert_round(admin, job_id, "deleter", step=1)
    await insert_summary(admin, job_id, "deleter", round_index=1)
    await insert_progress(admin, job_id, "deleter", range(3))
    await insert_warning(admin, job_id, "deleter", "round_failed")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        response = await client.delete(f"/v1/jobs/{job_id}", headers=auth(full_stack, "deleter"))
        assert response.status_code == 204
        assert (await client.get(f"/v1/jobs/{job_id}", headers=auth(full_stack, "deleter"))).status_code == 404
    for table in ("jobs", "training_predictions", "job_rounds", "job_progress", "job_warnings"):
        assert await admin.fetchval(f"SELECT count(*) FROM {table} WHERE job_id = $1", job_id) == 0, table


async def test_schemathesis_finds_no_server_error_and_every_response_matches_the_spec(
    full_stack: Any, admin: asyncpg.Connection, tmp_path: Path
) -> None:
    job_id = await insert_job(admin, "fuzzer", status="completed")
    await insert_round(admin, job_id, "fuzzer", step=1)
    config = tmp_path / "schemathesis.toml"
    # Known identifiers let the fuzzer reach past the 404s into the handlers (a prediction's path step too: with one
    # path parameter left free the fuzzer "breaks" the pinned ones and reads their restored values as accepted).
    # A body over the server's limit is refused with a 413 before it is read: a rejection like the others.
    rejections = "[400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]"
    config.write_text(
        f'[parameters]\njob_id = "{job_id}"\nsample_id = "row-000000"\n"path.step" = 1\n\n'
        f"[checks.negative_data_rejection]\nexpected-statuses = {rejections}\n"
    )
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{full_stack.api_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {full_stack.mint_token('fuzzer')}",
        "--checks",
        "all",
        # An opaque cursor or a missing dataset file is invalid in ways a schema cannot say.
        "--exclude-checks",
        "positive_data_acceptance",
        "--max-examples",
        "20",
        "--seed",
        "1",
        "--exclude-path",
        "/v1/jobs/{job_id}/stream",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    output = result.stdout + result.stderr
    report = ARTIFACTS / "schemathesis.txt"  # the whole report: the failures come before the summary
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(output)
    assert result.returncode == 0, f"see {report}; the end: {output[-3000:]}"
    generated = int(re.search(r"(\d+) generated", output).group(1))
    assert generated >= 1000, output[-3000:]
