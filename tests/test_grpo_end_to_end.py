"""A GRPO job through the real stack (API, broker, trainer, writer, Postgres; tiny model on CPU): it completes with
prediction rounds and rollouts, and every stored rollout's rewards are an independent grading of its stored
completion by the same graders, its total their weighted mean; its progress history carries each component's mean
and pass rate per step. Bad GRPO configs are 422s naming the field."""

import json
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from test_end_to_end import headers, wait_for_final_status
from tiny_model import TINY_MODEL_ID
from uploads import upload

from epochscope_runtime.grading import Grader
from epochscope_schemas.graders import GraderConfig

pytestmark = pytest.mark.stack

LABEL = {"type": "string_check", "name": "label", "operation": "equals", "reference_field": "label"}
IS_JSON = {"type": "json_parse", "name": "is_json"}
SOME_TEXT = {"type": "regex", "name": "some_text", "pattern": r"\S"}  # a random model earns it: totals above 0
WEIGHTS = {"label": 2.0, "is_json": 1.0, "some_text": 3.0}
LABELS = {f"Is {i} even?": "yes" if i % 2 == 0 else "no" for i in range(8)}


def prompts_with_labels() -> bytes:
    rows = [{"messages": [{"role": "user", "content": prompt}], "label": label} for prompt, label in LABELS.items()]
    return ("\n".join(json.dumps(row) for row in rows) + "\n").encode()


def grpo_config(dataset_id: str, **method: Any) -> dict[str, Any]:
    rewards = [{"grader": LABEL, "weight": 2}, {"grader": "is_json"}, {"grader": SOME_TEXT, "weight": 3}]
    return {
        "model": TINY_MODEL_ID,
        "dataset_id": dataset_id,
        "num_epochs": 1,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "method": {"type": "grpo", "rewards": rewards, "num_generations": 2, "max_completion_length": 4}
        | {"max_steps": 2, "rollouts": {"log": "all"}}
        | method,
        "predictions": {"enabled": True, "sample_count": 2, "max_new_tokens": 4, "graders": [IS_JSON]},
    }


async def all_rollouts(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor, has_more = None, True
    while has_more:
        page = (await client.get(f"/v1/jobs/{job_id}/rollouts", params={"limit": 3, "cursor": cursor or ""})).json()
        rows += page["items"]
        cursor, has_more = page["next_cursor"], page["has_more"]
    return rows


async def test_a_grpo_job_is_rewarded_by_its_graders_and_stores_every_rollout(full_stack: Any) -> None:
    token = full_stack.mint_token("gerda")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=headers(token)) as client:
        dataset = (await upload(client, token, "labels.jsonl", prompts_with_labels()))["dataset_id"]
        created = await client.post("/v1/jobs", json=grpo_config(dataset))
        assert created.status_code == 201, created.text
        job = await wait_for_final_status(client, created.json()["job_id"], token)
        assert job["status"] == "completed", job
        assert job["rounds"], job  # prediction rounds as for SFT (the baseline at least)
        rollouts = await all_rollouts(client, job["job_id"])
        progress = (await client.get(f"/v1/jobs/{job['job_id']}/progress")).json()["items"]
    assert sorted((r["step"], r["completion_index"]) for r in rollouts) == [(s, i) for s in (1, 2) for i in range(4)]
    graders = {g["name"]: Grader(TypeAdapter(GraderConfig).validate_python(g)) for g in (LABEL, IS_JSON, SOME_TEXT)}
    for rollout in rollouts:
        references = {"label": LABELS[rollout["prompt"]]}
        graded = {name: g(rollout["prompt"], rollout["completion"], references).score for name, g in graders.items()}
        assert rollout["rewards"] == graded, rollout
        assert rollout["reward"] == pytest.approx(sum(WEIGHTS[n] * graded[n] for n in WEIGHTS) / sum(WEIGHTS.values()))
    assert any(rollout["reward"] for rollout in rollouts)
    assert_progress_rewards_are_the_rollouts(progress, rollouts, graders)


def assert_progress_rewards_are_the_rollouts(
    progress: list[dict[str, Any]], rollouts: list[dict[str, Any]], graders: dict[str, Grader]
) -> None:
    """Each progress point's reward components are the mean, over the steps since the previous point, of each step's
    mean score and pass rate, from an independent grading of every stored rollout (all are logged)."""

    def per_step(step: int, name: str) -> tuple[float, float]:
        verdicts = [
            graders[name](r["prompt"], r["completion"], {"label": LABELS[r["prompt"]]})
            for r in rollouts
            if r["step"] == step
        ]
        return sum(v.score for v in verdicts) / len(verdicts), sum(v.passed for v in verdicts) / len(verdicts)

    assert [point["step"] for point in progress][-1] == 2
    previous = 0
    for point in progress:
        steps = range(previous + 1, point["step"] + 1)
        assert set(point["rewards"]) == set(graders), point
        for name, logged in point["rewards"].items():
            means, rates = zip(*(per_step(step, name) for step in steps), strict=True)
            assert logged["mean"] == pytest.approx(sum(means) / len(means)), (name, point)
            assert logged["pass_rate"] == pytest.approx(sum(rates) / len(rates)), (name, point)
        assert point["reward"] is not None
        previous = point["step"]


@pytest.mark.parametrize(
    ("method", "loc", "message"),
    [
        ({"rewards": [{"grader": "accuracy"}]}, ["body"], "method.rewards.0.grader: no grader named 'accuracy'"),
        ({"rewards": [{"grader": "is_json", "weight": 0}]}, ["body", "method", "grpo"], "must not sum to zero"),
        ({"num_generations": 32, "max_steps": 1}, ["body", "method", "num_generations"], "at most 16"),
        ({"packing": True}, ["body", "method", "grpo", "packing"], "Extra inputs are not permitted"),
    ],
)
async def test_a_bad_grpo_config_is_a_422_naming_the_field(
    full_stack: Any, method: dict[str, Any], loc: list[str], message: str
) -> None:
    token = full_stack.mint_token("gerda")
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=headers(token)) as client:
        dataset = (await upload(client, token, "labels.jsonl", prompts_with_labels()))["dataset_id"]
        config = grpo_config(dataset, **method)
        config["batch_size"] = 32  # a multiple of every num_generations here
        response = await client.post("/v1/jobs", json=config)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(error["loc"] == loc and message in error["msg"] for error in errors), errors
