"""Reward hacking made visible on a real GRPO job (real stack, tiny model, CPU): a reward whose `format` component is
satisfied where its `content` component is not records a `reward_divergence` warning naming both and the steps,
stored by the writer and served with the job; a job whose components move together records none.

Why the rewards are crafted from the rows: a tiny random model does not learn, in two CPU steps, to satisfy a format
reward while its content reward falls, so whether a real run diverges would be chance. Here each component is a
`string_check` `contains` against a field of the row: an empty field is satisfied by any completion, a field no
completion holds by none. Each step trains on one prompt (batch_size = num_generations), so a step's mean score per
component is its row's, whatever the model writes, and the two rows are the two steps of each epoch in either
order: the component means move apart from step 1 to step 2 (or together, for the job without divergence, which
runs 2 epochs with a training seed that makes them rise together at one step and fall together at another), and
everything after the scores (TRL's reward functions, the reward watch, the detector, the warning event, the writer,
the API) runs for real, deterministically."""

import json
from typing import Any

import httpx
import pytest
from test_end_to_end import headers, wait_for_final_status
from tiny_model import TINY_MODEL_ID
from uploads import upload

pytestmark = pytest.mark.stack

NEVER = "<no completion holds this 7f3e>"  # what a `contains` check of a 4-token completion never finds
SEED = 3  # orders the rows so that the 2-epoch job's steps rise and fall
FORMAT = {"type": "string_check", "name": "format", "operation": "contains", "reference_field": "format"}
CONTENT = {"type": "string_check", "name": "content", "operation": "contains", "reference_field": "content"}


def rows(first: tuple[str, str], second: tuple[str, str]) -> bytes:
    """Two prompt-only rows with what each component looks for (format, content)."""
    lines = [
        {"prompt": f"Book a table, case {i}.", "format": format_, "content": content}
        for i, (format_, content) in enumerate((first, second))
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


async def run_job(full_stack: Any, user: str, dataset: bytes, epochs: int = 1) -> tuple[dict[str, Any], list[dict]]:
    """The job, completed, and its rollouts; each epoch is 2 steps (one per row, in the seed's order)."""
    token = full_stack.mint_token(user)
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30, headers=headers(token)) as client:
        dataset_id = (await upload(client, token, "hacking.jsonl", dataset))["dataset_id"]
        method = {
            "type": "grpo",
            "rewards": [{"grader": FORMAT}, {"grader": CONTENT}],
            "num_generations": 2,
            "max_completion_length": 4,
            "rollouts": {"log": "all"},
            "reward_divergence": {"window": 2, "min_change": 0.5},
        }
        config = {"model": TINY_MODEL_ID, "dataset_id": dataset_id, "batch_size": 2, "num_epochs": epochs}
        config |= {"method": method, "predictions": {"seed": SEED}}  # the training seed: the rows' order
        created = await client.post("/v1/jobs", json=config)
        assert created.status_code == 201, created.text
        job = await wait_for_final_status(client, created.json()["job_id"], token)
        rollouts = (await client.get(f"/v1/jobs/{job['job_id']}/rollouts")).json()["items"]
    assert job["status"] == "completed", job
    assert sorted({r["step"] for r in rollouts}) == list(range(1, 2 * epochs + 1)), rollouts
    return job, rollouts


async def test_a_format_reward_satisfied_without_its_content_records_a_reward_divergence(full_stack: Any) -> None:
    job, _ = await run_job(full_stack, "hacker", rows(("", NEVER), (NEVER, "")))
    (warning,) = [w for w in job["warnings"] if w["code"] == "reward_divergence"]
    assert "'format'" in warning["message"] and "'content'" in warning["message"], warning
    assert "rose by 1.000" in warning["message"] and "fell by 1.000" in warning["message"], warning
    assert "over steps 1-2" in warning["message"], warning


async def test_components_moving_together_record_no_divergence(full_stack: Any) -> None:
    """Over 2 epochs the components rise together at one step and fall together at another (checked on the stored
    rollouts, so the test covers both directions): never a divergence."""
    job, rollouts = await run_job(full_stack, "honest", rows(("", ""), (NEVER, NEVER)), epochs=2)
    assert not [w for w in job["warnings"] if w["code"] == "reward_divergence"], job["warnings"]
    means = [[r["rewards"]["format"] for r in rollouts if r["step"] == step] for step in range(1, 5)]
    changes = {round(sum(b) / len(b) - sum(a) / len(a)) for a, b in zip(means, means[1:], strict=False)}
    assert {-1, 1} <= changes, means
