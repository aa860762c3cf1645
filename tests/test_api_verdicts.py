"""Users' verdicts on predictions against the real local stack (rows inserted as the administrator, no trainer):
set, change, read, list, remove; bounded texts; another user's prediction or verdict a 404, and the API's own
database role unable to read or write another user's verdict rows; the `human` grader in the round summaries, the
timeline, the comparisons and the checkpoints ranked by it, each recomputed here from the verdicts."""

import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from api_rows import admin_fixture, auth  # noqa: F401  fixture
from test_api_timeline import all_predictions, expected_changes, expected_timeline, timeline_job, verdicts_at

pytestmark = pytest.mark.stack

# The critic's verdicts: (round, sample) -> good. Steps are round * 10 in timeline_job.
JUDGED = {
    (0, 0): True,
    (0, 1): False,
    (0, 2): False,
    (1, 0): True,
    (1, 1): True,
    (2, 0): False,
    (2, 1): True,
    (3, 0): True,
    (3, 1): True,
}


def verdict_path(job_id: uuid.UUID, round_index: int, sample: int) -> str:
    return f"/v1/jobs/{job_id}/predictions/{round_index * 10}/row-{sample:06d}/verdict"


async def judge(client: httpx.AsyncClient, job_id: uuid.UUID) -> None:
    for (r, i), good in JUDGED.items():
        body = {"good": good, "note": None if good else f"wrong at {r}", "correction": None if good else "fixed"}
        response = await client.put(verdict_path(job_id, r, i), json=body)
        assert response.status_code == 201, response.text


async def test_a_verdict_is_set_changed_read_listed_and_removed(full_stack: Any, admin: Any) -> None:
    job_id = await timeline_job(admin, "critic", str(uuid.uuid4()))
    path = verdict_path(job_id, 1, 3)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "critic")) as c:
        created = await c.put(path, json={"good": False, "note": "too long", "correction": '{"city": "Oslo"}'})
        changed = await c.put(path, json={"good": True})
        read = await c.get(path)
        listed = (await c.get(f"/v1/jobs/{job_id}/verdicts", params={"sample_id": "row-000003"})).json()
        removed = await c.delete(path)
        gone = await c.get(path)
        removed_again = await c.delete(path)
        no_prediction = await c.put(f"/v1/jobs/{job_id}/predictions/11/row-000003/verdict", json={"good": True})
        nul = await c.put(f"/v1/jobs/{job_id}/predictions/10/row%00/verdict", json={"good": True})
        too_long = await c.get(f"/v1/jobs/{job_id}/predictions/10/{'r' * 201}/verdict")
        limits = await c.put(path, json={"good": False, "note": "n" * 2001, "correction": "c" * (32 << 10)})
        nul_note = await c.put(path, json={"good": False, "note": "a\x00b"})
        extra = await c.put(path, json={"good": False, "score": 1})
        coerced = await c.put(path, json={"good": 0})
    assert created.status_code == 201 and created.json()["note"] == "too long"
    assert created.json()["round_index"] == 1 and created.json()["correction"] == '{"city": "Oslo"}'
    assert changed.status_code == 200 and changed.json()["good"] is True and changed.json()["note"] is None
    assert read.json() == changed.json() and listed["items"] == [changed.json()] and listed["next_cursor"] is None
    assert removed.status_code == 204 and gone.status_code == 404 and removed_again.status_code == 404
    assert no_prediction.status_code == 404 and "prediction not found" in no_prediction.text
    assert nul.status_code == 404 and too_long.status_code == 404
    assert limits.status_code == 422
    assert [e["loc"] for e in limits.json()["detail"]] == [["body", "note"]]  # the correction is at its limit
    assert "EPOCHSCOPE_VERDICT_NOTE_MAX_CHARS" in limits.text
    assert nul_note.status_code == 422 and nul_note.json()["detail"][0]["loc"] == ["body", "note"]
    assert extra.status_code == 422 and coerced.status_code == 422


async def test_another_users_predictions_and_verdicts_are_not_found(full_stack: Any, admin: Any) -> None:
    job_id = await timeline_job(admin, "owner-v", str(uuid.uuid4()))
    path = verdict_path(job_id, 0, 0)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as c:
        mine = await c.put(path, json={"good": False, "note": "mine"}, headers=auth(full_stack, "owner-v"))
        intruder = auth(full_stack, "intruder-v")
        answers = [
            await c.put(path, json={"good": True}, headers=intruder),
            await c.put(verdict_path(job_id, 0, 1), json={"good": True}, headers=intruder),
            await c.get(path, headers=intruder),
            await c.delete(path, headers=intruder),
            await c.get(f"/v1/jobs/{job_id}/verdicts", headers=intruder),
        ]
        still = await c.get(path, headers=auth(full_stack, "owner-v"))
    assert mine.status_code == 201
    assert [a.status_code for a in answers] == [404] * 5, [a.text for a in answers]
    assert still.json()["good"] is False and still.json()["note"] == "mine"

    # The database refuses too: as the API's role with the intruder set, the row is invisible and unwritable.
    api = await asyncpg.connect(full_stack.api_database_url)
    try:
        async with api.transaction():
            await api.execute("SELECT set_config('app.user_id', 'intruder-v', true)")
            seen = await api.fetchval("SELECT count(*) FROM prediction_verdicts WHERE job_id = $1", job_id)
            updated = await api.execute("UPDATE prediction_verdicts SET good = true WHERE job_id = $1", job_id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # WITH CHECK: a row owned by someone else
                await api.execute(
                    "INSERT INTO prediction_verdicts (job_id, step, sample_id, owner_id, good)"
                    " VALUES ($1, 0, 'row-000001', 'owner-v', true)",
                    job_id,
                )
        async with api.transaction():
            await api.execute("SELECT set_config('app.user_id', 'owner-v', true)")
            owned = await api.fetchval("SELECT count(*) FROM prediction_verdicts WHERE job_id = $1", job_id)
        forced = await admin.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'prediction_verdicts'"
        )
        writer_grants = await admin.fetchval(
            "SELECT count(*) FROM information_schema.role_table_grants"
            " WHERE table_name = 'prediction_verdicts' AND grantee = 'epochscope_writer'"
        )
    finally:
        await api.close()
    assert (seen, updated, owned) == (0, "UPDATE 0", 1)
    assert tuple(forced) == (True, True) and writer_grants == 0


async def test_verdicts_are_the_human_grader_everywhere(full_stack: Any, admin: Any) -> None:
    dataset = str(uuid.uuid4())
    job_id = await timeline_job(admin, "critic", dataset)
    other = await timeline_job(admin, "critic", dataset, flip=True)
    for r in range(4):
        await admin.execute(
            "INSERT INTO job_rounds (job_id, round_index, owner_id, epoch, step, trigger, predictions, validated,"
            " valid, scored, tokens_generated, wall_ms, stall_ms, occurred_at, graders)"
            " VALUES ($1, $2::int, 'critic', $2::int::float8, $2::int * 10, 'epoch', 5, 0, 0, 0, 0, 1, 1, now(),"
            " $3::jsonb)",
            job_id,
            r,
            json.dumps({"json": {"graded": 5, "passed": 2, "mean_score": 0.4}}),
        )
    for r in range(3):
        await admin.execute(
            "INSERT INTO job_checkpoints (checkpoint_id, job_id, owner_id, round_index, step, epoch, final, key,"
            " files, bytes, sha256, metrics, save_ms, stall_ms, upload_ms, occurred_at)"
            " VALUES (gen_random_uuid(), $1, 'critic', $2::int, $2::int * 10, $2::int, false, 'k', '[]', 0, 's',"
            " '{}', 0, 0, 0, now())",
            job_id,
            r,
        )
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "critic")) as c:
        await judge(c, job_id)
        await c.put(f"/v1/jobs/{other}/predictions/30/row-000000/verdict", json={"good": False})
        await c.put(f"/v1/jobs/{other}/predictions/30/row-000001/verdict", json={"good": True})
        predictions = await all_predictions(c, job_id)
        rounds = (await c.get(f"/v1/jobs/{job_id}/rounds")).json()["items"]
        timeline = (await c.get(f"/v1/jobs/{job_id}/timeline", params={"grader": "human"})).json()["items"]
        compared = (await c.get(f"/v1/jobs/{job_id}/rounds/compare", params={"a": 0, "b": 2})).json()
        latest = await all_predictions(c, other)
        jobs = (await c.get("/v1/comparisons/changes", params={"job_ids": f"{job_id},{other}"})).json()
        by_job = (await c.get(f"/v1/jobs/{job_id}/checkpoints")).json()
        by_human = (await c.get(f"/v1/jobs/{job_id}/checkpoints", params={"rank_by": "human"})).json()
        bad_rank = await c.get(f"/v1/jobs/{job_id}/checkpoints", params={"rank_by": "loudest"})

    # Every prediction judged carries its verdict as the `human` grade; no other does.
    human = {(p["round_index"], int(p["sample_id"][-6:])): p["grades"].get("human") for p in predictions}
    assert {key: grade["passed"] for key, grade in human.items() if grade} == JUDGED
    assert all(grade["score"] == float(grade["passed"]) for grade in human.values() if grade)

    # Round summaries: counted from the verdicts, beside the trainer's graders.
    assert len(rounds) == 4
    for summary in rounds:
        mine = [good for (r, _), good in JUDGED.items() if r == summary["round_index"]]
        assert "json" in summary["graders"]
        assert summary["graders"]["human"] == {
            "graded": len(mine),
            "passed": sum(mine),
            "pass_rate": sum(mine) / len(mine),
            "mean_score": pytest.approx(sum(mine) / len(mine)),
        }

    # The timeline of the human grader is the verdicts', recomputed independently.
    expected = expected_timeline(
        [{**p, "grades": {"human": p["grades"]["human"]}} for p in predictions if "human" in p["grades"]]
    )
    assert [s for s in timeline if s["graders"]] == expected
    assert [s["sample_id"] for s in timeline if not s["graders"]] == ["row-000003", "row-000004"]  # never judged
    sample_0 = next(s for s in timeline if s["sample_id"] == "row-000000")["graders"][0]
    assert [f["kind"] for f in sample_0["flips"]] == ["regression", "fix"] and sample_0["first_passed_round"] == 0

    # Round 2 against round 0: sample 1 fixed, sample 0 regressed (sample 2 not judged at round 2).
    change = {g["grader"]: g for g in compared["graders"]}["human"]
    fixes, regressions, p_value = expected_changes(
        verdicts_at(predictions, 0, "human"), verdicts_at(predictions, 2, "human")
    )
    assert (change["fixes"], change["regressions"]) == (fixes, regressions) == (["row-000001"], ["row-000000"])
    assert change["p_value"] == pytest.approx(p_value) and change["graded"] == 2

    # Two jobs: each job's latest answer per sample (round 3) and the verdicts on them: sample 0 regressed.
    job_change = {g["grader"]: g for g in jobs["graders"]}["human"]
    fixes, regressions, p_value = expected_changes(
        verdicts_at(predictions, 3, "human"), verdicts_at(latest, 3, "human")
    )
    assert (job_change["fixes"], job_change["regressions"]) == (fixes, regressions) == ([], ["row-000000"])
    assert job_change["graded"] == 2 and job_change["p_value"] == pytest.approx(p_value)

    # Checkpoints: by the job's metric none is best (no metric stored); by the verdicts, round 1 (2 of 2) beats
    # round 0 (1 of 3) and round 2 (1 of 2); each carries its round's counts.
    assert by_job["best_checkpoint_id"] is None and by_human["metric"] == "grader_pass_rate:human"
    best = next(c for c in by_human["items"] if c["best"])
    assert best["round_index"] == 1 and best["checkpoint_id"] == by_human["best_checkpoint_id"]
    assert [(c["human"]["graded"], c["human"]["passed"]) for c in by_human["items"]] == [(3, 1), (2, 2), (2, 1)]
    assert bad_rank.status_code == 422


async def test_the_best_checkpoint_by_verdicts_does_not_reward_few_verdicts(full_stack: Any, admin: Any) -> None:
    """Round 0: 1 good of 1 judged (a rate of 1, Wilson low end 0.21); round 1: 4 good of 5 (0.8, low end 0.38).
    A demanding user trusts round 1 more, and so does the ranking; by the raw rate round 0 would win."""
    job_id = await timeline_job(admin, "ranker", str(uuid.uuid4()))
    for r in range(2):
        await admin.execute(
            "INSERT INTO job_rounds (job_id, round_index, owner_id, epoch, step, trigger, predictions, validated,"
            " valid, scored, tokens_generated, wall_ms, stall_ms, occurred_at)"
            " VALUES ($1, $2::int, 'ranker', $2::int::float8, $2::int * 10, 'epoch', 5, 0, 0, 0, 0, 1, 1, now())",
            job_id,
            r,
        )
        await admin.execute(
            "INSERT INTO job_checkpoints (checkpoint_id, job_id, owner_id, round_index, step, epoch, final, key,"
            " files, bytes, sha256, metrics, save_ms, stall_ms, upload_ms, occurred_at)"
            " VALUES (gen_random_uuid(), $1, 'ranker', $2::int, $2::int * 10, $2::int, false, 'k', '[]', 0, 's',"
            " '{}', 0, 0, 0, now())",
            job_id,
            r,
        )
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=auth(full_stack, "ranker")) as c:
        await c.put(verdict_path(job_id, 0, 0), json={"good": True})
        for i in range(5):
            await c.put(verdict_path(job_id, 1, i), json={"good": i != 4})
        ranked = (await c.get(f"/v1/jobs/{job_id}/checkpoints", params={"rank_by": "human"})).json()
    humans = [c["human"] for c in ranked["items"]]
    assert [(h["graded"], h["passed"], h["pass_rate"]) for h in humans] == [(1, 1, 1.0), (5, 4, 0.8)]
    assert [round(h["lower_bound"], 4) for h in humans] == [0.2065, 0.3755]
    assert [c["best"] for c in ranked["items"]] == [False, True]
