"""Checkpoints on the real stack (tiny model): kept per round, listed and downloaded by the owner only, and the
proof that a round's checkpoint is the model behind its answers: loaded again, it gives the same greedy answers.

The proof can fail only where the answers tell the models apart, so the jobs train on a sentence the tiny model
learns within an epoch (one row a step, a high learning rate) and the tests assert first that every round's answers
differ from the base model's and from every other round's, and that the rounds' ROUGE-L scores are distinct."""

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from test_end_to_end import all_predictions, headers, job_config, uploaded, wait_for_final_status
from transformers import AutoModelForCausalLM, AutoTokenizer
from uploads import upload

from epochscope.checkpoint_cli import extract_checkpoint
from epochscope.cli import main as cli_main
from epochscope_trainer.job.generation import GenerationSettings, generate_across_ranks

pytestmark = pytest.mark.stack

MAX_NEW_TOKENS = 8
ANSWER = "The capital of France is Paris"  # words of the tiny tokenizer's corpus: learnt within an epoch
# A step per row (16 an epoch), a rate 10 times the usual, the loss on every token: on the answers alone the one
# shared answer is learned in the first epoch (ROUGE-L 1.0 in rounds 1 and 2), leaving no best round to pick.
LEARNING = {"batch_size": 1, "learning_rate": 1e-2, "method": {"type": "sft", "train_on": "all"}}


async def memorable_dataset(full_stack: Any, user: str) -> str:
    """The id of `user`'s upload of 16 questions that all have the same answer, `ANSWER`."""
    rows = [
        {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": ANSWER}]}
        for i in range(16)
    ]
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        return (await upload(client, full_stack.mint_token(user), "memorable.jsonl", content))["dataset_id"]


async def run_job(full_stack: Any, user: str, dataset_id: str, overrides: dict[str, Any]) -> dict[str, Any]:
    token = full_stack.mint_token(user)
    predictions = {"enabled": True, "sample_count": 3, "max_new_tokens": MAX_NEW_TOKENS} | overrides.pop("predictions")
    config = job_config(dataset_id, predictions) | overrides
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        created = await client.post("/v1/jobs", json=config, headers=headers(token))
        assert created.status_code == 201, created.text
        return await wait_for_final_status(client, created.json()["job_id"], token)


async def checkpoints_of(full_stack: Any, user: str, job_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        response = await client.get(f"/v1/jobs/{job_id}/checkpoints", headers=headers(full_stack.mint_token(user)))
    assert response.status_code == 200, response.text
    return response.json()


async def download(full_stack: Any, user: str, job_id: str, checkpoint: dict[str, Any], target: Path) -> Path:
    url = f"/v1/jobs/{job_id}/checkpoints/{checkpoint['checkpoint_id']}/download"
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        response = await client.get(url, headers=headers(full_stack.mint_token(user)))
    assert response.status_code == 200, response.text
    assert int(response.headers["content-length"]) == len(response.content)
    return extract_checkpoint(io.BytesIO(response.content), target, checkpoint)


def reproduce(folder: Path, base: Path, lora: bool, rows: list[dict[str, Any]]) -> list[str]:
    """The checkpoint's greedy answers to a round's prompts, generated as the trainer does."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if lora:
        from peft import PeftModel

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), folder)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    prompts = [row["prompt"] for row in rows]
    settings = GenerationSettings(MAX_NEW_TOKENS, 0.0, 1.0, 42)
    return [g.text for g in generate_across_ranks(model, tokenizer, prompts, settings)]


async def answers_by_round(full_stack: Any, job: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """The job's prediction rows by round, each round's in sample order."""
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        rows = await all_predictions(client, job["job_id"], full_stack.mint_token("alice"))
    rounds: dict[int, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["round_index"], r["sample_index"])):
        rounds.setdefault(row["round_index"], []).append(row)
    return rounds


def assert_rounds_tell_the_models_apart(rounds: dict[int, list[dict[str, Any]]], base: Path) -> None:
    """The preconditions of the proof: the base model answers as round 0 did, and each round's answers differ from
    every other round's (so from the base model's): a wrong round's weights, or the base model's, cannot pass."""
    answers = {index: [r["prediction"] for r in rows] for index, rows in rounds.items()}
    assert all(len(a) == 3 for a in answers.values()), answers
    assert reproduce(base, base, False, rounds[0]) == answers[0], answers
    assert len({tuple(a) for a in answers.values()}) == len(answers), f"rounds with the same answers: {answers}"


async def assert_reproduces(
    full_stack: Any,
    job: dict[str, Any],
    rounds: dict[int, list[dict[str, Any]]],
    checkpoint: dict[str, Any],
    base: Path,
    lora: bool,
    tmp_path: Path,
) -> None:
    in_round = rounds[checkpoint["round_index"]]
    folder = await download(full_stack, "alice", job["job_id"], checkpoint, tmp_path)
    assert reproduce(folder, base, lora, in_round) == [r["prediction"] for r in in_round]


def ranked_rounds(job: dict[str, Any]) -> list[int]:
    """The rounds by ROUGE-L, the best first, asserting the scores distinct (a real winner, no tie-break)."""
    values = {r["round_index"]: r["mean_rouge_l"] for r in job["rounds"]}
    assert len(set(values.values())) == len(values), f"tied rounds: {values}"
    return sorted(values, key=lambda index: -values[index])


async def test_every_round_inline_full_fine_tuning_reproduces_each_rounds_answers(
    full_stack: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    dataset = await memorable_dataset(full_stack, "alice")
    checkpoints = {"mode": "every_round", "metric": "mean_rouge_l"}
    job = await run_job(full_stack, "alice", dataset, LEARNING | {"predictions": {"checkpoints": checkpoints}})
    assert job["status"] == "completed", job
    listed = await checkpoints_of(full_stack, "alice", job["job_id"])
    rounds = [c["round_index"] for c in listed["items"]]
    assert rounds == [0, 1, 2, None] and listed["items"][-1]["final"]
    assert all(c["bytes"] > 0 and c["files"] for c in listed["items"])
    best = [c for c in listed["items"] if c["best"]]
    assert [c["round_index"] for c in best] == ranked_rounds(job)[:1]
    assert listed["best_checkpoint_id"] == best[0]["checkpoint_id"]
    answers = await answers_by_round(full_stack, job)
    assert_rounds_tell_the_models_apart(answers, tiny_model_dir)
    for checkpoint in listed["items"][1:3]:  # after epoch 1 and epoch 2: trained weights, inline rounds
        target = tmp_path / str(checkpoint["round_index"])
        await assert_reproduces(full_stack, job, answers, checkpoint, tiny_model_dir, False, target)

    # The CLI: round 1 with a progress bar, unpacked, every file checked against its SHA-256.
    target = tmp_path / "cli"
    command = ["checkpoint", "download", job["job_id"], "1", "-o", str(target), "--api", full_stack.api_url]
    token = full_stack.mint_token("alice")
    assert await asyncio.to_thread(cli_main, [*command, "--token", token]) == 0
    names = sorted(p.name for p in (target / "round-1").iterdir())
    assert names == sorted(f["name"] for f in listed["items"][1]["files"])

    bob = full_stack.mint_token("bob")
    first = listed["items"][0]["checkpoint_id"]
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        assert (await client.get(f"/v1/jobs/{job['job_id']}/checkpoints", headers=headers(bob))).status_code == 404
        url = f"/v1/jobs/{job['job_id']}/checkpoints/{first}/download"
        assert (await client.get(url, headers=headers(bob))).status_code == 404


async def test_best_background_lora_keeps_k_prunes_the_store_and_reproduces(
    full_stack: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    dataset = await memorable_dataset(full_stack, "alice")
    job = await run_job(
        full_stack,
        "alice",
        dataset,
        LEARNING
        | {
            "num_epochs": 2,
            "lora": {"r": 4, "alpha": 8},
            "predictions": {
                "background": True,
                "checkpoints": {"mode": "best", "metric": "mean_rouge_l", "keep": 2},
            },
        },
    )
    assert job["status"] == "completed", job
    listed = await checkpoints_of(full_stack, "alice", job["job_id"])
    kept = [c for c in listed["items"] if not c["final"]]
    assert len(kept) == 2 and listed["items"][-1]["final"]
    ranked = ranked_rounds(job)
    assert sorted(c["round_index"] for c in kept) == sorted(ranked[:2])
    best = next(c for c in kept if c["best"])
    assert best["round_index"] == ranked[0] == job["best_round"]
    store = Path(full_stack.object_store_dir) / "jobs" / job["job_id"] / "checkpoints"
    on_disk = sorted(p.name for p in store.iterdir() if any(p.iterdir()))
    assert on_disk == sorted(["final", *(f"round-{c['round_index']}" for c in kept)])
    for c in listed["items"]:  # background: saved in the round's thread, beside training: no stall measured
        assert (c["stall_ms"] is None) is (not c["final"])  # the final weights are saved in training's thread
        print(f"background checkpoint {c['round_index']}: save {c['save_ms']:.0f} ms, stall {c['stall_ms']} ms")
    answers = await answers_by_round(full_stack, job)
    assert_rounds_tell_the_models_apart(answers, tiny_model_dir)
    for checkpoint in kept:  # background rounds: saved from the snapshot that answered
        target = tmp_path / str(checkpoint["round_index"])
        await assert_reproduces(full_stack, job, answers, checkpoint, tiny_model_dir, True, target)


async def test_stop_when_ends_early_with_the_reason_and_a_rule_never_met_runs_to_the_end(full_stack: Any) -> None:
    dataset = await uploaded(full_stack, "alice")
    stop = {"metric": "mean_exact_match", "threshold": 0.0, "rounds": 2}
    early = await run_job(full_stack, "alice", dataset, {"num_epochs": 4, "predictions": {"stop_when": stop}})
    assert early["status"] == "completed", early
    assert early["status_message"].startswith("stopped early at round 2: mean exact match "), early
    assert early["status_message"].endswith(" for 2 rounds")
    assert [r["round_index"] for r in early["rounds"]] == [0, 1, 2]
    never = {"metric": "mean_exact_match", "threshold": 1.0, "rounds": 10}
    full = await run_job(full_stack, "alice", dataset, {"num_epochs": 3, "predictions": {"stop_when": never}})
    assert full["status_message"] == "training finished"
    assert [r["round_index"] for r in full["rounds"]] == [0, 1, 2, 3]


async def test_a_store_failure_during_a_save_is_a_warning_and_training_goes_on(full_stack: Any) -> None:
    """The object where round 1's files go is a plain file: every put under it fails. The job completes with a
    warning, and the rounds after it are saved."""
    token = full_stack.mint_token("alice")
    dataset = await uploaded(full_stack, "alice")
    predictions = {"enabled": True, "sample_count": 3, "max_new_tokens": MAX_NEW_TOKENS}
    config = job_config(dataset, predictions | {"checkpoints": {"mode": "every_round"}})
    async with httpx.AsyncClient(base_url=full_stack.api_url, timeout=30) as client:
        created = await client.post("/v1/jobs", json=config, headers=headers(token))
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        blocked = Path(full_stack.object_store_dir) / "jobs" / job_id / "checkpoints"
        blocked.mkdir(parents=True)
        (blocked / "round-1").write_text("not a folder")
        job = await wait_for_final_status(client, job_id, token)
    assert job["status"] == "completed", job
    assert [w["code"] for w in job["warnings"]] == ["checkpoint_failed"]
    assert "round 1" in job["warnings"][0]["message"]
    listed = await checkpoints_of(full_stack, "alice", job_id)
    assert [c["round_index"] for c in listed["items"]] == [0, 2, None]
    for c in listed["items"]:  # the stall per checkpoint, next to its round's wall time (for the note)
        wall = next((r["wall_ms"] for r in job["rounds"] if r["round_index"] == c["round_index"]), None)
        print(f"checkpoint {c['round_index']}: save {c['save_ms']:.0f} ms, stall {c['stall_ms']:.0f} ms, round {wall}")
