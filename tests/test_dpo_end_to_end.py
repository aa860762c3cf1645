"""A DPO job through the real stack (API, broker, trainer, writer, Postgres; tiny model on CPU, LoRA): an upload in
OpenAI's preference format reports its DPO-usable rows; the job completes with a baseline and learned rounds, stops
early by `stop_when`, keeps a checkpoint per round that reproduces its round's answers, compares its rounds, and
stores and serves the DPO metrics of every logged step. A DPO job on a dataset without preference rows is a 422."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api_timeline import expected_changes, verdicts_at
from test_checkpoints_end_to_end import (
    ANSWER,
    answers_by_round,
    assert_reproduces,
    assert_rounds_tell_the_models_apart,
    checkpoints_of,
    run_job,
)
from test_end_to_end import headers, uploaded
from uploads import upload

pytestmark = pytest.mark.stack

PARIS = {"type": "regex", "name": "paris", "pattern": "Paris"}


def openai_preference_file() -> bytes:
    """16 questions, each preferring `ANSWER` to a refusal; one row more whose answers are the same (unusable)."""

    def pair(i: int, rejected: str) -> dict[str, Any]:
        return {
            "input": {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}]},
            "preferred_output": [{"role": "assistant", "content": ANSWER}],
            "non_preferred_output": [{"role": "assistant", "content": rejected}],
        }

    rows = [pair(i, f"I do not know {i}") for i in range(16)] + [pair(99, ANSWER)]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


async def test_a_lora_dpo_job_learns_in_rounds_reproduced_by_its_checkpoints_with_its_metrics_served(
    full_stack: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    token = full_stack.mint_token("alice")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=headers(token)) as client:
        dataset = await upload(client, token, "prefs.jsonl", openai_preference_file())
        fetched = (await client.get(f"/v1/datasets/{dataset['dataset_id']}")).json()
        rows = (await client.get(f"/v1/datasets/{dataset['dataset_id']}/rows", params={"limit": 50})).json()["items"]
    assert fetched["report"]["methods"] == dataset["report"]["methods"]
    methods = dataset["report"]["methods"]
    same = {"chosen and rejected are the same answer": {"rows": 1, "first_lines": [17]}}
    assert methods["dpo"] == {"usable": 16, "unusable": same}
    assert methods["sft"]["usable"] == 0 and dataset["row_format"] == "conversational_preference"
    assert [(row["line"], row["ground_truth"]) for row in rows] == [(i + 1, ANSWER) for i in range(16)]  # chosen
    assert rows[3]["prompt"] == [{"role": "user", "content": "What is 3 plus 3?"}]

    stop = {"metric": "mean_rouge_l", "threshold": 0.0, "rounds": 2}  # met by every round: stops at round 2 of 3
    checkpoints = {"mode": "every_round", "metric": "mean_rouge_l"}
    job = await run_job(
        full_stack,
        "alice",
        dataset["dataset_id"],
        {
            "num_epochs": 3,
            "batch_size": 1,
            "learning_rate": 1e-2,
            "max_length": 128,
            "lora": {"r": 4, "alpha": 8},
            "method": {"type": "dpo", "beta": 0.1},
            "predictions": {"graders": [PARIS], "checkpoints": checkpoints, "stop_when": stop},
        },
    )
    assert job["status"] == "completed", job
    assert job["status_message"].startswith("stopped early at round 2"), job
    assert [r["round_index"] for r in job["rounds"]] == [0, 1, 2]  # the baseline and two learned rounds

    answers = await answers_by_round(full_stack, job)
    assert_rounds_tell_the_models_apart(answers, tiny_model_dir)
    assert all(row["ground_truth"] == ANSWER for rows in answers.values() for row in rows)  # the chosen answer
    listed = await checkpoints_of(full_stack, "alice", job["job_id"])
    for checkpoint in [c for c in listed["items"] if c["round_index"] in (1, 2)]:
        target = tmp_path / str(checkpoint["round_index"])
        await assert_reproduces(full_stack, job, answers, checkpoint, tiny_model_dir, True, target)

    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=headers(token)) as client:
        compared = (await client.get(f"/v1/jobs/{job['job_id']}/rounds/compare", params={"a": 0, "b": 2})).json()
        progress = (await client.get(f"/v1/jobs/{job['job_id']}/progress")).json()["items"]
    predictions = [row for rows in answers.values() for row in rows]
    (change,) = compared["graders"]
    fixes, regressions, _ = expected_changes(verdicts_at(predictions, 0, "paris"), verdicts_at(predictions, 2, "paris"))
    assert (change["grader"], change["fixes"], change["regressions"]) == ("paris", fixes, regressions)

    assert progress and progress[-1]["step"] <= 32  # a pair a step, 16 an epoch, stopped after epoch 2
    for point in progress:
        assert None not in (point["chosen_reward"], point["rejected_reward"], point["reward_accuracy"]), point
        assert point["reward_margin"] == pytest.approx(point["chosen_reward"] - point["rejected_reward"], abs=1e-4)
        assert 0.0 <= point["reward_accuracy"] <= 1.0 and point["rewards"] is None
    assert progress[-1]["reward_margin"] > 0  # the chosen answer pulls ahead of the rejected one


async def test_a_dpo_job_on_a_dataset_without_preference_rows_is_a_422_naming_the_dataset(full_stack: Any) -> None:
    chat = await uploaded(full_stack, "alice")
    token = full_stack.mint_token("alice")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=headers(token)) as client:
        pairs = (await upload(client, token, "prefs.jsonl", openai_preference_file()))["dataset_id"]
        on_chat = await client.post("/v1/jobs", json={"model": "tiny", "dataset_id": chat, "method": {"type": "dpo"}})
        eval_chat = {"model": "tiny", "dataset_id": pairs, "eval_dataset_id": chat, "method": {"type": "dpo"}}
        on_eval_chat = await client.post("/v1/jobs", json=eval_chat)
        sft_on_pairs = await client.post("/v1/jobs", json={"model": "tiny", "dataset_id": pairs})
    why = "has no row a dpo job can use: not a preference row (prompt, chosen, rejected) (8)"
    for response, field in ((on_chat, "dataset_id"), (on_eval_chat, "eval_dataset_id")):
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", field] and error["msg"] == f"dataset {chat} {why}", error
    assert sft_on_pairs.status_code == 422, sft_on_pairs.text
    (error,) = sft_on_pairs.json()["detail"]
    assert error["msg"].startswith(f"dataset {pairs} has no row a sft job can use: a preference row (for DPO) (16)")
