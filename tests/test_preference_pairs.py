"""Preference pairs built from a finished job's rounds against the real local stack (the job's rows inserted as the
administrator, its samples dataset a real upload): the built dataset's rows are checked against pairs recomputed
here from the stored predictions, verdicts and dataset rows as the API returns them, and its report and provenance
are the upload's. Pair selection's corner cases are unit-tested in test_pair_selection.py."""

import json
import uuid
from typing import Any

import httpx
import orjson
import pytest
from api_rows import admin_fixture, auth, insert_job  # noqa: F401  fixture
from test_api_timeline import all_predictions

from epochscope_api.datasets.uploads import object_key
from epochscope_runtime.dataset_rows import FileType

pytestmark = pytest.mark.stack


SYSTEM = "Answer with the city only."
# `json`'s verdict of sample i (rows) at round r (columns).
PASSES = ["TFT", "FFF", "TTT", "FTF"]


def chat_rows() -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Where is landmark {i}?"},
                {"role": "assistant", "content": f"City {i}"},
            ]
        }
        for i in range(len(PASSES))
    ]


async def pairs_job(admin: Any, owner: str, dataset_id: str) -> uuid.UUID:
    """A completed job on the dataset whose answers follow PASSES; round 1's answer of sample 3 was cut."""
    predictions = {"enabled": True, "graders": [{"name": "json", "type": "json_parse"}]}
    config = {"model": "tiny", "dataset_id": dataset_id, "predictions": predictions}
    job_id = await insert_job(admin, owner, status="completed", config=config)
    rows = []
    for r in range(len(PASSES[0])):
        for i, passes in enumerate(PASSES):
            passed = passes[r] == "T"
            grades = {"json": {"score": float(passed), "passed": passed, "error": None}}
            truncated = ["prediction"] if (i, r) == (3, 1) else []
            answer = f"City {i}" if passed else f"wrong {i} at {r}"
            rows.append(
                (
                    job_id,
                    r * 10,
                    f"row-{i:06d}",
                    owner,
                    r,
                    i,
                    answer,
                    f"City {i}",
                    json.dumps(grades),
                    json.dumps(truncated),
                )
            )
    await admin.executemany(
        "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,"
        " prompt, prediction, ground_truth, grades, truncated, event_id, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5::int, $5::int::float8, $6, 'rendered prompt', $7, $8, $9::jsonb, $10::jsonb,"
        " gen_random_uuid(), now())",
        rows,
    )
    return job_id


def expected_pairs(predictions: list[dict[str, Any]], corrections: dict[str, str], prompts: dict[str, Any]) -> list:
    """The pairs recomputed from the API's predictions: regressions (a pass, then the next graded answer failing)
    first, then every other failure against its correction, else the ground truth; cut answers left out."""
    by_sample: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(predictions, key=lambda row: (row["sample_id"], row["round_index"])):
        if "prediction" not in row["truncated"] and "json" in row["grades"]:
            by_sample.setdefault(row["sample_id"], []).append(row)
    regressions, others = [], []
    for sample_id, rows in by_sample.items():
        used = set()
        for before, after in zip(rows, rows[1:], strict=False):
            if before["grades"]["json"]["passed"] and not after["grades"]["json"]["passed"]:
                regressions.append((sample_id, before["prediction"], after["prediction"]))
                used.add(after["round_index"])
        for row in rows:
            if not row["grades"]["json"]["passed"] and row["round_index"] not in used:
                others.append((sample_id, corrections.get(sample_id, row["ground_truth"]), row["prediction"]))
    pairs = []
    for sample_id, chosen, rejected in regressions + others:
        if chosen != rejected and (sample_id, chosen, rejected) not in [p[:3] for p in pairs]:
            pairs.append((sample_id, chosen, rejected))
    turn = lambda text: [{"role": "assistant", "content": text}]  # noqa: E731
    return [{"prompt": prompts[s], "chosen": turn(c), "rejected": turn(r)} for s, c, r in pairs]


async def test_pairs_from_a_finished_job_are_a_reported_dataset(full_stack: Any, admin: Any) -> None:
    owner = "pairer"
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60, headers=auth(full_stack, owner)) as c:
        upload = b"".join(orjson.dumps(row) + b"\n" for row in chat_rows())
        samples = (await c.post("/v1/datasets", files={"file": ("cities.jsonl", upload)})).json()
        job_id = await pairs_job(admin, owner, samples["dataset_id"])
        correction = await c.put(
            f"/v1/jobs/{job_id}/predictions/0/row-000001/verdict", json={"good": False, "correction": "City one"}
        )
        built = await c.post(f"/v1/jobs/{job_id}/preference-pairs", json={"grader": "json"})
        assert correction.status_code == 201 and built.status_code == 201, built.text
        dataset = built.json()
        predictions = await all_predictions(c, job_id)
        verdicts = (await c.get(f"/v1/jobs/{job_id}/verdicts")).json()["items"]
        rows = (await c.get(f"/v1/datasets/{samples['dataset_id']}/rows")).json()["items"]
        read_back = (await c.get(f"/v1/datasets/{dataset['dataset_id']}")).json()
        listed = (await c.get("/v1/datasets")).json()["items"]

    corrections = {v["sample_id"]: v["correction"] for v in verdicts if v["correction"]}
    prompts = {row["sample_id"]: row["prompt"] for row in rows}
    stored = full_stack.object_store_dir / object_key(owner, uuid.UUID(dataset["dataset_id"]), FileType.JSONL)
    built_rows = [json.loads(line) for line in stored.read_text().splitlines()]
    assert built_rows == expected_pairs(predictions, corrections, prompts)
    # By hand: sample 0 regressed at round 1 (first), sample 3's cut answer is out, its round 2 failure is paired.
    assert [row["rejected"][0]["content"] for row in built_rows] == [
        "wrong 0 at 1",
        "wrong 1 at 0",
        "wrong 1 at 1",
        "wrong 1 at 2",
        "wrong 3 at 0",
        "wrong 3 at 2",
    ]
    assert built_rows[0]["chosen"][0]["content"] == "City 0" and built_rows[1]["chosen"][0]["content"] == "City one"
    assert built_rows[0]["prompt"][0] == {"role": "system", "content": SYSTEM}
    assert dataset["usable_rows"] == dataset["rows"] == 6 and dataset["report"]["malformed"] == 0
    assert dataset["provenance"] == {
        "job_id": str(job_id),
        "rounds": [0, 1, 2],
        "rule": {
            "grader": "json",
            "rounds": None,
            "chosen": ["correction", "ground_truth", "passed"],
            "max_pairs": None,
        },
        "pairs": 6,
        "regressions": 1,
    }
    assert read_back == dataset and dataset in listed


async def test_pairs_are_bounded_owned_and_need_failures(full_stack: Any, admin: Any) -> None:
    owner = "pairer-2"
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=60) as c:
        upload = b"".join(orjson.dumps(row) + b"\n" for row in chat_rows())
        headers = auth(full_stack, owner)
        samples = (await c.post("/v1/datasets", files={"file": ("cities.jsonl", upload)}, headers=headers)).json()
        job_id = await pairs_job(admin, owner, samples["dataset_id"])
        path = f"/v1/jobs/{job_id}/preference-pairs"
        theirs = await c.post(path, json={"grader": "json"}, headers=auth(full_stack, "stranger-2"))
        too_many = await c.post(path, json={"grader": "json", "max_pairs": 2001}, headers=headers)
        unknown = await c.post(path, json={"grader": "json", "chosen": ["vibes"]}, headers=headers)
        no_rounds = await c.post(path, json={"grader": "json", "rounds": [7]}, headers=headers)
        nobody_failed = await c.post(
            path, json={"grader": "json", "rounds": [2], "chosen": ["passed"]}, headers=headers
        )
        ungraded = await c.post(path, json={"grader": "human"}, headers=headers)
        datasets = (await c.get("/v1/datasets", headers=headers)).json()["items"]
    assert theirs.status_code == 404
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "max_pairs"]
    assert "EPOCHSCOPE_PREFERENCE_PAIRS_MAX" in too_many.text
    assert unknown.status_code == 422 and no_rounds.status_code == 422 and "rounds" in no_rounds.text
    # Round 2 alone: samples 1 and 3 failed, but no answer of theirs passed in it, and only `passed` may be chosen.
    assert nobody_failed.status_code == 422 and "no pairs" in nobody_failed.text
    assert ungraded.status_code == 422 and "no pairs" in ungraded.text  # no verdicts: `human` graded nothing
    assert [d["dataset_id"] for d in datasets] == [samples["dataset_id"]]  # nothing built, nothing kept
