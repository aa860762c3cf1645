"""Comparisons, exports and job names/metadata against the real local stack, with rows inserted as the
administrator (no trainer): exports round-trip through the standard readers with exactly the API's rows."""

import csv
import io
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pyarrow.parquet as pq
import pytest
from api_rows import admin_fixture, auth, insert_job  # noqa: F401  fixture

pytestmark = pytest.mark.stack

DATASET = str(uuid.uuid4())
GRADERS = [{"type": "json_parse", "name": "json"}, {"type": "json_field", "name": "city", "path": "city"}]


async def graded_job(
    admin: asyncpg.Connection,
    owner: str,
    rounds: int = 3,
    samples: int = 4,
    dataset: str = DATASET,
    summarized: int | None = None,
    **config: Any,
) -> uuid.UUID:
    """A job with graded predictions: answer i of round r is right when (i + r) is even; the first `summarized`
    rounds (all by default) with the trainer's summary of them."""
    config = {"model": "tiny", "dataset_id": dataset, "predictions": {"enabled": True, "graders": GRADERS}} | config
    job_id = await insert_job(admin, owner, status="completed", config=config)
    rows = []
    for r in range(rounds):
        for i in range(samples):
            right = (i + r) % 2 == 0
            answer = '{"city": "Paris"}' if right else f"Lyon, said round {r} — ünïcode"
            grades = {
                "json": {"score": float(right), "passed": right, "error": None if right else "not valid JSON"},
                "city": {"score": float(right), "passed": right, "error": None if right else "no value at city"},
            }
            rows.append(
                (job_id, r * 10, f"row-{i:06d}", owner, r, float(r), i, f"prompt {i}", '{"city": "Paris"}', answer)
                + (right, float(right), json.dumps(grades), ["prediction"] if i == 3 else [], uuid.uuid4())
            )
    await admin.executemany(
        "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,"
        " prompt, ground_truth, prediction, valid, exact_match, f1, rouge_l, grades, truncated, event_id, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0.5, 0.25, $13::jsonb, $14::text::jsonb, $15,"
        " now())",
        [row[:13] + (json.dumps(row[13]), row[14]) for row in rows],
    )
    for r in range(rounds if summarized is None else summarized):
        right = sum(1 for i in range(samples) if (i + r) % 2 == 0)
        grader = {"graded": samples, "passed": right, "mean_score": right / samples}
        await admin.execute(
            "INSERT INTO job_rounds (job_id, round_index, owner_id, epoch, step, trigger, predictions, validated,"
            " valid, scored, mean_exact_match, mean_f1, mean_rouge_l, graders, tokens_generated, wall_ms, stall_ms,"
            " occurred_at) VALUES ($1, $2::int, $3, $2::int::float8, $2::int * 10, 'epoch', $4::int, $4::int, $5::int,"
            " $4::int, $5::int::float8 / $4::int, 0.5, 0.25, $6::jsonb, 0, 0, 0, now())",
            job_id,
            r,
            owner,
            samples,
            right,
            json.dumps({"json": grader, "city": grader}),
        )
    return job_id


async def api_rows(client: httpx.AsyncClient, job_id: uuid.UUID) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        page = (await client.get(f"/v1/jobs/{job_id}/predictions", params={"cursor": cursor} if cursor else {})).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return items


async def test_each_export_format_round_trips_with_exactly_the_apis_rows(full_stack: Any, admin: Any) -> None:
    job_id = await graded_job(admin, "exporter", name="lr 1e-3")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "exporter")) as c:
        expected = await api_rows(c, job_id)
        url = f"/v1/jobs/{job_id}/predictions/export"
        exports = {fmt: await c.get(url, params={"format": fmt}) for fmt in ("jsonl", "csv", "parquet")}
    assert len(expected) == 12 and all(r.status_code == 200 for r in exports.values())
    assert exports["csv"].headers["content-type"].startswith("text/csv")
    assert "attachment" in exports["parquet"].headers["content-disposition"]

    lines = [json.loads(line) for line in exports["jsonl"].text.splitlines()]
    assert [{k: v for k, v in line.items() if k not in ("job_id", "job_name")} for line in lines] == expected
    assert {(line["job_id"], line["job_name"]) for line in lines} == {(str(job_id), "lr 1e-3")}

    table = pq.read_table(io.BytesIO(exports["parquet"].content)).to_pylist()
    from_csv = list(csv.DictReader(io.StringIO(exports["csv"].text)))
    assert len(table) == len(from_csv) == len(expected)
    for row, flat, api in zip(table, from_csv, expected, strict=True):
        assert (row["step"], row["sample_id"], row["prediction"]) == (api["step"], api["sample_id"], api["prediction"])
        assert (int(flat["step"]), flat["sample_id"], flat["prediction"]) == (
            row["step"],
            row["sample_id"],
            row["prediction"],
        )
        assert row["rouge_l"] == api["scores"]["rouge_l"] and float(flat["f1"]) == api["scores"]["f1"]
        assert json.loads(row["truncated"]) == api["truncated"] == json.loads(flat["truncated"])
        for name in ("json", "city"):
            assert row[f"grade.{name}.score"] == api["grades"][name]["score"]
            assert row[f"grade.{name}.passed"] is api["grades"][name]["passed"]
            assert flat[f"grade.{name}.passed"] == str(api["grades"][name]["passed"])
            assert (flat[f"grade.{name}.error"] or None) == row[f"grade.{name}.error"] == api["grades"][name]["error"]


async def test_a_comparison_matches_samples_on_dataset_and_id(full_stack: Any, admin: Any) -> None:
    first = await graded_job(admin, "comparer", name="first")
    # Fewer samples (3 shared), and its last round's summary not arrived yet.
    second = await graded_job(admin, "comparer", rounds=2, samples=3, summarized=1)
    elsewhere = await graded_job(admin, "comparer", dataset=str(uuid.uuid4()))  # same ids, other rows
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "comparer")) as c:
        found = (await c.get("/v1/comparisons", params={"job_ids": f"{first},{second}"})).json()
        at_epoch = (await c.get("/v1/comparisons", params={"job_ids": f"{first},{second}", "epoch": 0})).json()
        apart = (await c.get("/v1/comparisons", params={"job_ids": f"{first},{elsewhere}"})).json()
        sample = (await c.get("/v1/comparisons/samples/row-000001", params={"job_ids": f"{first},{elsewhere}"})).json()
        shared_export = await c.get(
            "/v1/comparisons/export", params={"job_ids": f"{first},{second}", "format": "jsonl"}
        )
        bad = await c.get("/v1/comparisons", params={"job_ids": str(first)})
    assert found["same_dataset"] and found["shared_samples"] == 3
    assert [job["name"] for job in found["jobs"]] == ["first", None]
    assert [len(job["rounds"]) for job in found["jobs"]] == [3, 2] and [j["samples"] for j in found["jobs"]] == [4, 3]
    assert found["jobs"][0]["rounds"][0]["graders"]["city"] == {
        "graded": 4,
        "passed": 2,
        "pass_rate": 0.5,
        "mean_score": 0.5,
    }
    # The comparison reads the stored summaries: the round without one has no metric, though its rows are graded.
    unsummarized = found["jobs"][1]["rounds"][1]
    assert (unsummarized["summarized"], unsummarized["predictions"]) == (False, 3)
    assert unsummarized["graders"] is None and unsummarized["validator_pass_rate"] is None
    row0 = found["samples"][0]
    assert row0["sample_id"] == "row-000000" and [a["job_id"] for a in row0["answers"]] == [str(first), str(second)]
    assert [a["answer"]["epoch"] for a in row0["answers"]] == [2.0, 1.0]  # each job's latest
    assert {a["answer"]["epoch"] for s in at_epoch["samples"] for a in s["answers"]} == {0.0}
    assert not apart["same_dataset"] and apart["shared_samples"] == 0 and apart["samples"] == []
    assert [(job["same_dataset"], len(job["rounds"])) for job in sample["jobs"]] == [(True, 3), (False, 0)]
    exported = [json.loads(line) for line in shared_export.text.splitlines()]
    assert len(exported) == 3 * 3 + 2 * 3 and {row["sample_id"] for row in exported} == {
        f"row-00000{i}" for i in range(3)
    }
    assert bad.status_code == 422 and "job_ids" in bad.json()["detail"]


async def test_another_users_job_in_a_comparison_is_not_found(full_stack: Any, admin: Any) -> None:
    mine = await graded_job(admin, "carol")
    theirs = await graded_job(admin, "dave")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "carol")) as c:
        for path in ("/v1/comparisons", "/v1/comparisons/samples/row-000000", "/v1/comparisons/export"):
            response = await c.get(path, params={"job_ids": f"{mine},{theirs}"})
            assert response.status_code == 404, (path, response.text)
            assert response.json()["detail"] == "job not found"
        assert (await c.get(f"/v1/jobs/{theirs}/predictions/export")).status_code == 404


async def test_the_jobs_list_filters_by_name_and_metadata(full_stack: Any, admin: Any) -> None:
    a = await graded_job(admin, "tagger", name="Sentiment LR 1e-4", metadata={"task": "sentiment", "lr": "1e-4"})
    b = await graded_job(admin, "tagger", name="sentiment lr 1e-3", metadata={"task": "sentiment", "lr": "1e-3"})
    c_ = await graded_job(admin, "tagger", name="booking 50% off", metadata={"task": "booking"})
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "tagger")) as c:

        async def ids(**params: Any) -> set[str]:
            response = await c.get("/v1/jobs", params=params)
            assert response.status_code == 200, response.text
            return {job["job_id"] for job in response.json()["items"]}

        assert await ids(name="SENTIMENT") == {str(a), str(b)}
        assert await ids(name="50%") == {str(c_)}  # % is a character, not a wildcard
        assert await ids(metadata="task=sentiment") == {str(a), str(b)}
        assert await ids(metadata=["task=sentiment", "lr=1e-3"]) == {str(b)}
        assert (await c.get("/v1/jobs", params={"metadata": "task"})).status_code == 422
        listed = (await c.get("/v1/jobs", params={"name": "booking"})).json()["items"][0]
    assert (listed["name"], listed["metadata"]) == ("booking 50% off", {"task": "booking"})
