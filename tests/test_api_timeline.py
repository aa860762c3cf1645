"""The answer timeline and paired changes against the real local stack, with graded rows inserted as the
administrator (no trainer): every verdict, first pass and flip is recomputed here from the job's predictions as
GET /v1/jobs/{id}/predictions returns them, independently of the timeline's SQL and logic."""

import json
import uuid
from collections import defaultdict
from math import comb
from typing import Any

import asyncpg
import httpx
import pytest
from api_rows import admin_fixture, auth, insert_job  # noqa: F401  fixture

pytestmark = pytest.mark.stack

# json's verdict of sample i (rows) at round r (columns): flips of every kind, a sample never passing, one always.
JSON_PASSES = ["FTFT", "TTTT", "FFFF", "TFFT", "FFTT"]
ROUNDS, SAMPLES = 4, len(JSON_PASSES)


def city_passed(i: int, r: int) -> bool | None:
    """The second grader; None: not graded (sample 4 at round 2 has no `city` grade)."""
    return None if (i, r) == (4, 2) else (i + r) % 3 == 0


async def timeline_job(admin: asyncpg.Connection, owner: str, dataset: str, flip: bool = False) -> uuid.UUID:
    """A completed job whose verdicts follow JSON_PASSES and city_passed (`flip`: json's verdicts inverted)."""
    config = {"model": "tiny", "dataset_id": dataset, "predictions": {"enabled": True}}
    job_id = await insert_job(admin, owner, status="completed", config=config)
    rows = []
    for r in range(ROUNDS):
        for i in range(SAMPLES):
            json_passed = (JSON_PASSES[i][r] == "T") != flip
            grades = {"json": {"score": float(json_passed), "passed": json_passed, "error": None}}
            if (city := city_passed(i, r)) is not None:
                grades["city"] = {"score": 0.75 if city else 0.25, "passed": city, "error": None}
            rows.append((job_id, r * 10, f"row-{i:06d}", owner, r, float(r), i, f"prompt {i}", json.dumps(grades)))
    await admin.executemany(
        "INSERT INTO training_predictions (job_id, step, sample_id, owner_id, round_index, epoch, sample_index,"
        " prompt, ground_truth, prediction, grades, event_id, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'g', 'answer', $9::jsonb, gen_random_uuid(), now())",
        rows,
    )
    return job_id


async def all_predictions(client: httpx.AsyncClient, job_id: uuid.UUID, **query: str) -> list[dict[str, Any]]:
    items, params = [], {**query, "limit": 3}  # several pages
    while True:
        page = (await client.get(f"/v1/jobs/{job_id}/predictions", params=params)).json()
        items += page["items"]
        params = {**query, "limit": 3, "cursor": page["next_cursor"]}
        if not page["has_more"]:
            return items


def expected_timeline(predictions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline recomputed from the predictions: per sample and grader, the verdicts in round order, the first
    round passed and each change of verdict."""
    verdicts: dict[str, dict[str, list[tuple[int, bool]]]] = defaultdict(lambda: defaultdict(list))
    for row in sorted(predictions, key=lambda row: row["round_index"]):
        for grader, grade in row["grades"].items():
            verdicts[row["sample_id"]][grader].append((row["round_index"], grade["passed"]))
    timeline = []
    for sample_id in sorted(verdicts):
        graders = []
        for grader in sorted(verdicts[sample_id]):
            seen = verdicts[sample_id][grader]
            flips = []
            for k in range(1, len(seen)):
                if seen[k][1] != seen[k - 1][1]:
                    kind = "fix" if seen[k][1] else "regression"
                    flips.append({"kind": kind, "from_round": seen[k - 1][0], "to_round": seen[k][0]})
            first = [r for r, passed in seen if passed]
            graders.append(
                {
                    "grader": grader,
                    "first_passed_round": first[0] if first else None,
                    "verdicts": [{"round_index": r, "passed": passed} for r, passed in seen],
                    "flips": flips,
                }
            )
        timeline.append({"sample_id": sample_id, "sample_index": int(sample_id[-6:]), "graders": graders})
    return timeline


async def test_the_timeline_is_the_predictions_verdicts_paged(full_stack: Any, admin: Any) -> None:
    job_id = await timeline_job(admin, "historian", str(uuid.uuid4()))
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "historian")) as c:
        expected = expected_timeline(await all_predictions(c, job_id))
        pages, params = [], {"limit": 2}
        while True:
            page = (await c.get(f"/v1/jobs/{job_id}/timeline", params=params)).json()
            pages.append(page["items"])
            params["cursor"] = page["next_cursor"]
            if not page["has_more"]:
                break
        only_city = (await c.get(f"/v1/jobs/{job_id}/timeline", params={"grader": "city"})).json()["items"]
        bad_cursor = await c.get(f"/v1/jobs/{job_id}/timeline", params={"cursor": "bm90IG91cnM"})
        bad_grader = await c.get(f"/v1/jobs/{job_id}/timeline", params={"grader": "js\x00on"})
        limits = (await c.get("/v1/limits")).json()
        everything = await all_predictions(c, job_id)
        failing = {grader: await all_predictions(c, job_id, failing_grader=grader) for grader in ("json", "city")}
        bad_filter = await c.get(f"/v1/jobs/{job_id}/predictions", params={"failing_grader": "x" * 65})
    # The grader filter: exactly the rows that grader graded and failed (an ungraded row is not failing).
    for grader, rows in failing.items():
        expected_rows = [row for row in everything if grader in row["grades"] and not row["grades"][grader]["passed"]]
        assert rows == expected_rows and 0 < len(rows) < len(everything)
    assert bad_filter.status_code == 422 and "failing_grader" in bad_filter.text
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [sample for page in pages for sample in page] == expected
    assert only_city == [{**sample, "graders": sample["graders"][:1]} for sample in expected]  # "city" < "json"
    assert bad_cursor.status_code == 422 and limits["timeline_page_max"] == 100
    assert bad_grader.status_code == 422 and "grader" in bad_grader.text
    # The hand-made pattern, read straight: sample 0 fixed, regressed, fixed; sample 3 regressed then fixed.
    json_of = {s["sample_id"]: next(g for g in s["graders"] if g["grader"] == "json") for s in expected}
    assert [f["kind"] for f in json_of["row-000000"]["flips"]] == ["fix", "regression", "fix"]
    assert [(g["first_passed_round"], len(g["flips"])) for g in json_of.values()] == [
        (1, 3),
        (0, 0),
        (None, 0),
        (0, 2),
        (2, 1),
    ]
    city_4 = next(g for g in expected[4]["graders"] if g["grader"] == "city")
    assert [v["round_index"] for v in city_4["verdicts"]] == [0, 1, 3]  # round 2 not graded: no flip through it


def expected_changes(before: dict[str, bool], after: dict[str, bool]) -> tuple[list[str], list[str], float]:
    fixes = sorted(s for s in before if s in after and after[s] and not before[s])
    regressions = sorted(s for s in before if s in after and before[s] and not after[s])
    n, low = len(fixes) + len(regressions), min(len(fixes), len(regressions))
    return fixes, regressions, min(1.0, 2 * sum(comb(n, k) for k in range(low + 1)) / 2**n) if n else 1.0


def verdicts_at(predictions: list[dict[str, Any]], round_index: int, grader: str) -> dict[str, bool]:
    return {
        row["sample_id"]: row["grades"][grader]["passed"]
        for row in predictions
        if row["round_index"] == round_index and grader in row["grades"]
    }


async def test_two_rounds_and_two_jobs_compared_with_their_significance(full_stack: Any, admin: Any) -> None:
    dataset = str(uuid.uuid4())
    job_id = await timeline_job(admin, "judge", dataset)
    inverted = await timeline_job(admin, "judge", dataset, flip=True)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "judge")) as c:
        predictions = await all_predictions(c, job_id)
        inverted_predictions = await all_predictions(c, inverted)
        rounds = (await c.get(f"/v1/jobs/{job_id}/rounds/compare", params={"a": 0, "b": 2})).json()
        jobs = (await c.get("/v1/comparisons/changes", params={"job_ids": f"{job_id},{inverted}"})).json()
        missing = await c.get(f"/v1/jobs/{job_id}/rounds/compare", params={"a": 0, "b": 9})
        three = await c.get("/v1/comparisons/changes", params={"job_ids": f"{job_id},{inverted},{uuid.uuid4()}"})
    assert rounds["before"] == "round 0" and rounds["after"] == "round 2" and rounds["shared_samples"] == SAMPLES
    by_grader = {change["grader"]: change for change in rounds["graders"]}
    assert sorted(by_grader) == ["city", "json"]
    for grader, change in by_grader.items():
        fixes, regressions, p_value = expected_changes(
            verdicts_at(predictions, 0, grader), verdicts_at(predictions, 2, grader)
        )
        assert (change["fixes"], change["regressions"]) == (fixes, regressions)
        assert change["p_value"] == pytest.approx(p_value)
        assert change["summary"].startswith(f"{grader}: round 2 vs round 0: +{len(fixes)} passes, -{len(regressions)}")
    json_change = by_grader["json"]  # round 0 -> 2: rows 4 fixed, row 3 regressed
    assert (json_change["fixes"], json_change["regressions"], json_change["p_value"]) == (
        ["row-000004"],
        ["row-000003"],
        1.0,
    )
    assert json_change["mean_score_before"] == 0.4 and json_change["mean_score_after"] == 0.4
    interval = json_change["interval_difference"]
    assert interval["low"] <= 0 <= interval["high"] and interval["low"] < interval["high"]
    assert by_grader["city"]["graded"] == SAMPLES - 1  # sample 4 has no city grade at round 2

    # Inverted job's latest round (3) against the job's: every json verdict differs, 4 passes turn into failures.
    latest = {change["grader"]: change for change in jobs["graders"]}["json"]
    fixes, regressions, p_value = expected_changes(
        verdicts_at(predictions, 3, "json"), verdicts_at(inverted_predictions, 3, "json")
    )
    assert (
        (latest["fixes"], latest["regressions"])
        == (fixes, regressions)
        == (["row-000002"], sorted(f"row-{i:06d}" for i in (0, 1, 3, 4)))
    )
    assert latest["p_value"] == pytest.approx(p_value) == pytest.approx(12 / 32)  # 2 * (C(5,0) + C(5,1)) / 2^5
    assert "not significant at this sample size" in latest["summary"]
    assert missing.status_code == 422 and "b: round 9" in missing.text
    assert three.status_code == 422


async def test_another_users_job_has_no_timeline_nor_changes(full_stack: Any, admin: Any) -> None:
    dataset = str(uuid.uuid4())
    theirs = await timeline_job(admin, "owner-a", dataset)
    mine = await timeline_job(admin, "owner-b", dataset)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "owner-b")) as c:
        for path, params in (
            (f"/v1/jobs/{theirs}/timeline", {}),
            (f"/v1/jobs/{theirs}/rounds/compare", {"a": 0, "b": 1}),
            ("/v1/comparisons/changes", {"job_ids": f"{mine},{theirs}"}),
        ):
            response = await c.get(path, params=params)
            assert response.status_code == 404, (path, response.text)
        assert (await c.get(f"/v1/jobs/{mine}/timeline")).status_code == 200
