"""A GRPO job as for SFT, on the real stack (tiny model): the checkpoint of a learned round, downloaded through the
API, gives exactly that round's greedy answers; and an SFT job and a GRPO job predicting on the same samples dataset
compare round by round: each round's answers side by side and the changes between their latest rounds, each checked
against an independent reading of the two jobs' stored predictions.

The two jobs train on different uploads and predict on a third (`predictions.samples_dataset_id`): only that shared
samples dataset makes their samples the same rows."""

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api_timeline import expected_changes, verdicts_at
from test_checkpoints_end_to_end import (
    ANSWER,
    LEARNING,
    MAX_NEW_TOKENS,
    answers_by_round,
    assert_reproduces,
    assert_rounds_tell_the_models_apart,
    checkpoints_of,
    memorable_dataset,
)
from test_end_to_end import all_predictions, headers, job_config, wait_for_final_status
from tiny_model import TINY_MODEL_ID
from uploads import upload

pytestmark = pytest.mark.stack

CLOSE = {"type": "text_similarity", "name": "close", "metric": "fuzzy_match", "threshold": 0.3}
ROUNDS = [0, 1, 2]  # the baseline, then one per epoch


def questions(count: int, template: str) -> bytes:
    """`count` chat rows asking `template` of 0..count-1, each answered `ANSWER` (the ground truth)."""
    rows = [
        {"messages": [{"role": "user", "content": template.format(i)}, {"role": "assistant", "content": ANSWER}]}
        for i in range(count)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def predictions_on(samples_dataset: str, **extra: Any) -> dict[str, Any]:
    common = {"enabled": True, "sample_count": 3, "seed": 7, "max_new_tokens": MAX_NEW_TOKENS, "graders": [CLOSE]}
    return common | {"samples_dataset_id": samples_dataset} | extra


def sft_config(dataset: str, samples_dataset: str) -> dict[str, Any]:
    """The checkpoint tests' SFT job that learns `ANSWER` in its first epoch: its answers pass `close`."""
    return job_config(dataset, predictions_on(samples_dataset)) | LEARNING


def grpo_config(dataset: str, samples_dataset: str) -> dict[str, Any]:
    """Full fine-tuning at a high rate, rewarded by how close each completion is to the ground truth (a score that
    differs within every group of random completions, so every step moves the weights), a checkpoint each round."""
    checkpoints = {"mode": "every_round", "metric": "mean_rouge_l"}
    return {
        "model": TINY_MODEL_ID,
        "dataset_id": dataset,
        "num_epochs": 2,
        "batch_size": 4,
        "learning_rate": 5e-2,
        "method": {"type": "grpo", "rewards": [{"grader": "close"}], "num_generations": 2}
        | {"max_completion_length": MAX_NEW_TOKENS},
        "predictions": predictions_on(samples_dataset, checkpoints=checkpoints),
    }


@pytest.fixture(scope="module")
async def sft_and_grpo(full_stack: Any) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(the SFT job, the GRPO job, their samples dataset): alice's two jobs run to the end, queued together."""
    token = full_stack.mint_token("alice")
    sft_data = await memorable_dataset(full_stack, "alice")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=headers(token)) as client:
        grpo_data = (await upload(client, token, "prompts.jsonl", questions(4, "What is {0} plus {0}?")))["dataset_id"]
        samples = (await upload(client, token, "samples.jsonl", questions(6, "What is {} times 2?")))["dataset_id"]
        ids = []
        for config in (sft_config(sft_data, samples), grpo_config(grpo_data, samples)):
            created = await client.post("/v1/jobs", json=config)
            assert created.status_code == 201, created.text
            ids.append(created.json()["job_id"])
        sft, grpo = await asyncio.gather(*(wait_for_final_status(client, job_id, token) for job_id in ids))
    assert sft["status"] == grpo["status"] == "completed", (sft, grpo)
    return sft, grpo, samples


async def test_a_grpo_rounds_checkpoint_reproduces_that_rounds_greedy_answers(
    full_stack: Any, sft_and_grpo: tuple[dict[str, Any], dict[str, Any], str], tiny_model_dir: Path, tmp_path: Path
) -> None:
    _, grpo, _ = sft_and_grpo
    listed = await checkpoints_of(full_stack, "alice", grpo["job_id"])
    assert [c["round_index"] for c in listed["items"]] == [*ROUNDS, None] and listed["items"][-1]["final"]
    answers = await answers_by_round(full_stack, grpo)
    assert sorted(answers) == ROUNDS
    assert_rounds_tell_the_models_apart(answers, tiny_model_dir)  # learned rounds: neither the base nor each other
    for checkpoint in listed["items"][1:3]:
        target = tmp_path / str(checkpoint["round_index"])
        await assert_reproduces(full_stack, grpo, answers, checkpoint, tiny_model_dir, False, target)


def answer_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A stored prediction as a comparison shows it (the answer, without the sample's prompt and ground truth)."""
    shown = ("round_index", "epoch", "step", "prediction", "tokens_generated", "latency_ms", "valid", "scores")
    return {key: row[key] for key in (*shown, "validation_error", "grades", "truncated")}


def grader_summary(rows: list[dict[str, Any]], grader: str) -> dict[str, Any]:
    passed = sum(row["grades"][grader]["passed"] for row in rows)
    mean_score = sum(row["grades"][grader]["score"] for row in rows) / len(rows)
    return {"graded": len(rows), "passed": passed, "pass_rate": passed / len(rows), "mean_score": mean_score}


async def test_an_sft_job_and_a_grpo_job_on_the_same_samples_compare_round_by_round(
    full_stack: Any, sft_and_grpo: tuple[dict[str, Any], dict[str, Any], str]
) -> None:
    sft, grpo, samples = sft_and_grpo
    ids = [sft["job_id"], grpo["job_id"]]
    job_ids = {"job_ids": ",".join(ids)}
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        token = full_stack.mint_token("alice")
        stored = [await all_predictions(client, job_id, token) for job_id in ids]
        client.headers.update(headers(token))
        latest = (await client.get("/v1/comparisons", params=job_ids)).json()
        by_epoch = [(await client.get("/v1/comparisons", params=job_ids | {"epoch": e})).json() for e in ROUNDS]
        changes = (await client.get("/v1/comparisons/changes", params=job_ids)).json()

    # Independently: each job's stored answers by (round, sample id), on the three seeded rows of the samples file.
    answers = [{(row["round_index"], row["sample_id"]): row for row in rows} for rows in stored]
    sample_ids = sorted({sample_id for _, sample_id in answers[0]})
    assert len(sample_ids) == 3 and all(set(job) == {(r, s) for r in ROUNDS for s in sample_ids} for job in answers)
    texts = [{key: row["prediction"] for key, row in job.items()} for job in answers]
    # The preconditions: the same base model before training, then answers that tell the two jobs apart.
    assert all(texts[0][(0, s)] == texts[1][(0, s)] for s in sample_ids), texts
    assert all(texts[0][(r, s)] != texts[1][(r, s)] for r in ROUNDS[1:] for s in sample_ids), texts

    assert latest["same_dataset"] and latest["shared_samples"] == 3
    assert [job["job_id"] for job in latest["jobs"]] == ids
    assert [job["samples_dataset_id"] for job in latest["jobs"]] == [samples, samples]
    assert [job["config"]["method"]["type"] for job in latest["jobs"]] == ["sft", "grpo"]
    for job, rows in zip(latest["jobs"], stored, strict=True):
        assert [(r["round_index"], r["epoch"]) for r in job["rounds"]] == [(r, float(r)) for r in ROUNDS]
        for summary in job["rounds"]:  # each round's grader summary is its stored answers' grades
            in_round = [row for row in rows if row["round_index"] == summary["round_index"]]
            assert summary["graders"]["close"] == grader_summary(in_round, "close"), summary

    for round_index, comparison in zip(ROUNDS, by_epoch, strict=True):  # round r is epoch r in both jobs
        assert comparison["epoch"] == round_index and comparison["shared_samples"] == 3
        assert [s["sample_id"] for s in comparison["samples"]] == sample_ids
        for sample in comparison["samples"]:
            rows = [job[(round_index, sample["sample_id"])] for job in answers]
            assert (sample["prompt"], sample["ground_truth"]) == (rows[0]["prompt"], rows[0]["ground_truth"])
            assert [a["job_id"] for a in sample["answers"]] == ids
            assert [a["answer"] for a in sample["answers"]] == [answer_fields(row) for row in rows], sample
    assert latest["samples"] == by_epoch[-1]["samples"]  # without an epoch: each job's latest round

    # The changes from the SFT job's latest round to the GRPO job's, per grader, from the stored verdicts: the SFT
    # job learned the answer, the GRPO job's few steps did not (regressions: the order of the jobs shows).
    [change] = changes["graders"]
    fixes, regressions, p_value = expected_changes(
        verdicts_at(stored[0], ROUNDS[-1], "close"), verdicts_at(stored[1], ROUNDS[-1], "close")
    )
    assert regressions, texts
    assert (change["grader"], change["fixes"], change["regressions"]) == ("close", fixes, regressions)
    assert change["p_value"] == pytest.approx(p_value)
