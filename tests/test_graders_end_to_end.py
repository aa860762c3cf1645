"""Graders through real jobs (tiny model, real stack): every grader's verdict stored per prediction and summarized
per round; the old `validators` field still works; two jobs with different learning rates compared."""

import json
from typing import Any

import httpx
import pytest
from test_end_to_end import headers, job_config, wait_for_final_status
from uploads import upload

pytestmark = pytest.mark.stack

GRADERS = [
    {"type": "json_schema", "name": "schema", "json_schema": {"type": "object", "required": ["answer"]}},
    {"type": "string_check", "name": "same", "operation": "equals"},
    {"type": "string_check", "name": "has_digit", "operation": "contains", "reference": "1"},
    {"type": "regex", "name": "braces", "pattern": r"^\s*\{.*\}\s*$", "case_sensitive": False},
    {"type": "json_field", "name": "answer_field", "path": "answer"},
    {"type": "text_similarity", "name": "chrf", "metric": "chrf", "threshold": 0.3},
    {"type": "text_similarity", "name": "bleu", "metric": "bleu"},
]
NAMES = {"json_parse"} | {g["name"] for g in GRADERS}


def json_answers(rows: int = 8) -> bytes:
    """Chat rows whose answers are JSON objects: structured output, so json_field grades every sample."""
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"What is {i} plus {i}? Answer in JSON."},
                    {"role": "assistant", "content": json.dumps({"answer": i + i})},
                ]
            }
        )
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
async def compared_jobs(full_stack: Any) -> list[dict[str, Any]]:
    """Two finished jobs on the same dataset and samples, learning rates 1e-3 and 1e-2, graded."""
    token = full_stack.mint_token("grace")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        dataset = (await upload(client, token, "sums.jsonl", json_answers()))["dataset_id"]
    predictions = {
        "enabled": True,
        "sample_count": 3,
        "max_new_tokens": 6,
        "validators": [{"kind": "json_parse"}],
        "graders": GRADERS,
    }
    jobs = []
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        for lr in (1e-3, 1e-2):
            config = job_config(dataset, predictions) | {"learning_rate": lr, "name": f"lr {lr:g}"}
            created = await client.post("/v1/jobs", json=config | {"metadata": {"sweep": "lr"}}, headers=headers(token))
            assert created.status_code == 201, created.text
            jobs.append(created.json())
        return [await wait_for_final_status(client, job["job_id"], token) for job in jobs]


async def test_every_grader_grades_every_prediction_of_a_real_job(full_stack: Any, compared_jobs: list) -> None:
    job = compared_jobs[0]
    assert job["status"] == "completed", job
    assert job["name"] == "lr 0.001" and job["metadata"] == {"sweep": "lr"}
    token = full_stack.mint_token("grace")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=headers(token)) as client:
        page = (await client.get(f"/v1/jobs/{job['job_id']}/predictions", params={"limit": 100})).json()["items"]
    assert len(page) == 9
    for row in page:
        assert set(row["grades"]) == NAMES  # every sample has a ground truth: no grader skips one
        grades = row["grades"]
        assert grades["json_parse"]["passed"] is row["valid"]  # the old validator, as a grader, agrees
        assert grades["same"]["passed"] is (row["prediction"].strip() == row["ground_truth"].strip())
        assert all(0.0 <= grade["score"] <= 1.0 for grade in grades.values())
    for summary in job["rounds"]:
        assert set(summary["graders"]) == NAMES and summary["summarized"]
        assert all(g["graded"] == 3 and g["pass_rate"] == g["passed"] / 3 for g in summary["graders"].values())


async def test_two_real_jobs_with_different_learning_rates_compare_on_their_shared_samples(
    full_stack: Any, compared_jobs: list
) -> None:
    ids = ",".join(job["job_id"] for job in compared_jobs)
    token = full_stack.mint_token("grace")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=headers(token)) as client:
        comparison = (await client.get("/v1/comparisons", params={"job_ids": ids})).json()
        sample_id = comparison["samples"][0]["sample_id"]
        across = (await client.get(f"/v1/comparisons/samples/{sample_id}", params={"job_ids": ids})).json()
        bob = await client.get(
            "/v1/comparisons", params={"job_ids": ids}, headers=headers(full_stack.mint_token("bob"))
        )
    assert [job["config"]["learning_rate"] for job in comparison["jobs"]] == [1e-3, 1e-2]
    assert [[r["epoch"] for r in job["rounds"]] for job in comparison["jobs"]] == [[0, 1, 2], [0, 1, 2]]
    assert comparison["same_dataset"] and comparison["shared_samples"] == 3 and len(comparison["samples"]) == 3
    for sample in comparison["samples"]:
        assert [a["answer"]["epoch"] for a in sample["answers"]] == [2, 2]
        assert all(set(a["answer"]["grades"]) == NAMES for a in sample["answers"])
    assert [len(job["rounds"]) for job in across["jobs"]] == [3, 3]
    assert bob.status_code == 404
