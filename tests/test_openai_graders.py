"""OpenAI's graders through the official SDK against the real stack (tiny model): `graders.run` gives the score
Epochscope's own POST /v1/graders/run gives the same answer, `graders.validate` shows the Epochscope graders a
grader runs as, a grader Epochscope cannot run is the SDK's BadRequestError naming the param, and a reinforcement job
created with string_check and text_similarity graders in OpenAI's JSON completes with rollouts those graders
rewarded."""

import json
import time
import uuid
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from pydantic import TypeAdapter
from tiny_model import TINY_MODEL_ID

from epochscope_runtime.grading import Grader
from epochscope_schemas.graders import GraderConfig

pytestmark = pytest.mark.stack

ANSWER = "{{sample.output_text}}"
EXACT = {"type": "string_check", "name": "exact", "input": ANSWER, "reference": "{{item.answer}}", "operation": "eq"}
CLOSE = {
    "type": "text_similarity",
    "name": "close",
    "input": ANSWER,
    "reference": "{{item.answer}}",
    "evaluation_metric": "fuzzy_match",
    "pass_threshold": 0.6,
}
BOTH = {"type": "multi", "name": "both", "graders": {"exact": EXACT, "close": CLOSE}, "calculate_output": ""}
JOB_TIMEOUT_S = 300


def sdk(stack: Any, user: str) -> OpenAI:
    """The SDK as a user points it at Epochscope: no retries, so a refusal surfaces at once."""
    return OpenAI(base_url=f"{stack.api_url}/openai/v1", api_key=stack.mint_token(user), max_retries=0)


def own_api(stack: Any, user: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {stack.mint_token(user)}"}
    return httpx.Client(base_url=stack.api_url, headers=headers, timeout=30)


def own_score(own: httpx.Client, grader: dict[str, Any], answer: str, references: dict[str, str]) -> float | None:
    """Epochscope's own POST /v1/graders/run on the same answer."""
    response = own.post("/v1/graders/run", json={"grader": grader, "answer": answer, "references": references})
    assert response.status_code == 200, response.text
    return response.json()["score"]


@pytest.mark.parametrize(
    ("grader", "epochscope", "answer", "expected"),
    [
        (EXACT, {"type": "string_check", "name": "exact", "reference_field": "answer"}, "Paris", 1.0),
        (EXACT | {"operation": "ne"}, {"type": "string_check", "name": "exact", "operation": "not_equals"}, "Lyon", 1),
        (
            EXACT | {"operation": "ilike", "reference": "paris"},
            {"type": "string_check", "name": "exact", "operation": "contains", "reference": "paris"}
            | {"case_sensitive": False},
            "It is PARIS.",
            1.0,
        ),
        (CLOSE, {"type": "text_similarity", "name": "close", "metric": "fuzzy_match"}, "Pari", 2 * 4 / 9),
        (CLOSE | {"evaluation_metric": "rouge_l"}, {"type": "text_similarity", "name": "close", "metric": "rouge_l"})
        + ("Paris, France", 2 / 3),
        (CLOSE | {"evaluation_metric": "bleu"}, {"type": "text_similarity", "name": "close", "metric": "bleu"})
        + ("Paris Paris", None),  # whatever sacrebleu says: the same number both ways
    ],
)
def test_graders_run_scores_as_epochscopes_own_grader_run(
    full_stack: Any, grader: dict[str, Any], epochscope: dict[str, Any], answer: str, expected: float | None
) -> None:
    user = f"oaigr-{uuid.uuid4()}"
    client, own = sdk(full_stack, user), own_api(full_stack, user)
    references = {"answer": "Paris", "ground_truth": "Paris"}
    result = client.fine_tuning.alpha.graders.run(grader=grader, model_sample=answer, item={"answer": "Paris"})
    reference_field = {} if "reference" in epochscope else {"reference_field": "answer"}
    assert result.reward == own_score(own, epochscope | reference_field, answer, references)
    assert expected is None or result.reward == pytest.approx(expected)
    assert (result.metadata.name, result.metadata.type) == (grader["name"], grader["type"])
    assert not result.metadata.errors.invalid_variable_error


def test_a_multi_graders_reward_is_its_formula_over_the_scores_epochscope_gives(full_stack: Any) -> None:
    user = f"oaigr-{uuid.uuid4()}"
    client, own = sdk(full_stack, user), own_api(full_stack, user)
    grader = BOTH | {"calculate_output": "0.25 * exact + 0.75 * close"}
    result = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="Pari", item={"answer": "Paris"})
    exact = own_score(
        own, {"type": "string_check", "name": "e", "reference_field": "answer"}, "Pari", {"answer": "Paris"}
    )
    close = own_score(
        own,
        {"type": "text_similarity", "name": "c", "metric": "fuzzy_match", "reference_field": "answer"},
        "Pari",
        {"answer": "Paris"},
    )
    assert result.sub_rewards == {"exact": exact, "close": close} and (exact, close) == (0.0, pytest.approx(8 / 9))
    assert result.reward == pytest.approx(0.25 * exact + 0.75 * close)

    missing = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="Pari", item={"city": "Paris"})
    assert missing.metadata.errors.invalid_variable_error and missing.reward == 0.0 and missing.sub_rewards == {}


def test_graders_validate_shows_the_epochscope_graders_it_runs_as(full_stack: Any) -> None:
    client = sdk(full_stack, f"oaigr-{uuid.uuid4()}")
    grader = BOTH | {"calculate_output": "(exact + 3 * close) / 4"}
    validated = client.fine_tuning.alpha.graders.validate(grader=grader)
    assert validated.grader is not None and validated.grader.type == "multi"
    shown = {item["grader"]["name"]: item for item in validated.model_extra["epochscope_graders"]}
    assert shown["exact"]["weight"] == 0.25 and shown["close"]["weight"] == 0.75
    assert shown["close"]["grader"] == {
        "type": "text_similarity",
        "name": "close",
        "metric": "fuzzy_match",
        "threshold": 0.6,
        "reference_field": "answer",
    }


@pytest.mark.parametrize(
    ("call", "param"),
    [
        ({"grader": {"type": "python", "name": "p", "source": "def grade(s, i): return 1"}}, "grader.type"),
        ({"grader": {"type": "score_model", "name": "judge", "model": "gpt-4o", "input": []}}, "grader.type"),
        ({"grader": {"type": "label_model", "name": "judge"}}, "grader.type"),
        ({"grader": BOTH | {"calculate_output": "min(exact, close)"}}, "grader.calculate_output"),
        ({"grader": CLOSE | {"evaluation_metric": "cosine"}}, "grader.evaluation_metric"),
        ({"grader": EXACT | {"input": "{{item.answer}}"}}, "grader.input"),
        ({"grader": EXACT, "item": ["not", "a", "row"]}, "item"),
        ({"grader": EXACT, "model_sample": "a" * ((32 << 10) + 1)}, "model_sample"),
    ],
)
def test_a_grader_epochscope_cannot_run_is_a_bad_request_naming_the_param(
    full_stack: Any, call: dict[str, Any], param: str
) -> None:
    client = sdk(full_stack, f"oaigr-{uuid.uuid4()}")
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.alpha.graders.run(**({"model_sample": "Paris", "item": {"answer": "Paris"}} | call))
    assert caught.value.param == param, caught.value.body
    if param == "grader.type":
        with pytest.raises(openai.BadRequestError) as refused:
            client.fine_tuning.alpha.graders.validate(grader=call["grader"])
        assert refused.value.param == param and call["grader"]["type"] in refused.value.message


def test_graders_need_a_signed_in_user(full_stack: Any) -> None:
    stranger = OpenAI(base_url=f"{full_stack.api_url}/openai/v1", api_key="not-a-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.fine_tuning.alpha.graders.validate(grader=EXACT)


def questions() -> bytes:
    """OpenAI's reinforcement rows: a user turn to answer and the reference the graders read (`item.answer`)."""
    rows = [
        {"messages": [{"role": "user", "content": f"Is {i} even?"}], "answer": "yes" if i % 2 == 0 else "no"}
        for i in range(8)
    ]
    return ("\n".join(json.dumps(row) for row in rows) + "\n").encode()


def test_a_reinforcement_job_from_the_sdk_is_rewarded_by_its_openai_graders(full_stack: Any) -> None:
    user = f"oaigr-{uuid.uuid4()}"
    client, own = sdk(full_stack, user), own_api(full_stack, user)
    training = client.files.create(file=("rft.jsonl", questions()), purpose="fine-tune")
    reinforcement = {
        "grader": BOTH | {"calculate_output": "0.25 * exact + 0.75 * close"},
        "hyperparameters": {"n_epochs": 1, "batch_size": 4, "compute_multiplier": 0.5, "eval_interval": "auto"},
    }
    job = client.fine_tuning.jobs.create(
        model=TINY_MODEL_ID,
        training_file=training.id,
        method={"type": "reinforcement", "reinforcement": reinforcement},
        extra_body={"predictions": {"sample_count": 2, "max_new_tokens": 4}},
    )
    assert job.method.type == "reinforcement"
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job {job.id} still {job.status}"
        time.sleep(1)
    assert job.status == "succeeded", job.error

    job_id = uuid.UUID(job.id.removeprefix("ftjob-"))
    config = own.get(f"/v1/jobs/{job_id}").json()["config"]
    assert config["method"]["type"] == "grpo" and config["method"]["num_generations"] == 2  # 4 x 0.5
    assert [g["name"] for g in config["predictions"]["graders"]] == ["exact", "close"]  # the rounds grade with them
    rollouts = all_rollouts(own, job_id)
    assert rollouts, "the job published its rollouts"
    graders = {name: Grader(TypeAdapter(GraderConfig).validate_python(g)) for name, g in _epochscope(config).items()}
    answers = {f"Is {i} even?": "yes" if i % 2 == 0 else "no" for i in range(8)}
    for rollout in rollouts:
        references = {"answer": answers[rollout["prompt"]]}
        scores = {name: g(rollout["prompt"], rollout["completion"], references).score for name, g in graders.items()}
        assert rollout["rewards"] == pytest.approx(scores, abs=1e-6), rollout  # TRL keeps rewards as float32
        assert rollout["reward"] == pytest.approx(0.25 * scores["exact"] + 0.75 * scores["close"])


def all_rollouts(own: httpx.Client, job_id: uuid.UUID) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor, has_more = "", True
    while has_more:
        page = own.get(f"/v1/jobs/{job_id}/rollouts", params={"cursor": cursor}).json()
        rows += page["items"]
        cursor, has_more = page["next_cursor"], page["has_more"]
    return rows


def _epochscope(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {component["grader"]["name"]: component["grader"] for component in config["method"]["rewards"]}
