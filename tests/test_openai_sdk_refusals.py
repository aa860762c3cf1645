"""Through the official `openai` SDK on the real stack: each refusal raises the SDK's exception class with the
`param` naming the field at fault, nothing is created, and another user's files and jobs are NotFoundError."""

import uuid
from collections.abc import Callable
from typing import Any

import openai
import pytest
from conftest import UPLOAD_MAX_BYTES
from openai_sdk import epochscope, sdk, wait_until
from tiny_model import TINY_MODEL_ID
from uploads import chat_rows

pytestmark = pytest.mark.stack

SUPERVISED = "method.supervised.hyperparameters"


def supervised(**hyperparameters: Any) -> dict[str, Any]:
    return {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}


REFUSED_JOBS: list[tuple[str, dict[str, Any]]] = [
    ("model", {"model": "gpt-4o-mini"}),
    ("training_file", {"training_file": "not-a-file"}),
    ("training_file", {"training_file": f"file-{uuid.uuid4().hex}"}),
    ("validation_file", {"validation_file": f"file-{uuid.uuid4().hex}"}),
    (f"{SUPERVISED}.n_epochs", {"method": supervised(n_epochs=1000)}),
    (f"{SUPERVISED}.n_epochs", {"method": supervised(n_epochs="many")}),  # neither an int nor "auto"
    (f"{SUPERVISED}.batch_size", {"method": supervised(batch_size=0)}),
    (f"{SUPERVISED}.learning_rate_multiplier", {"method": supervised(learning_rate_multiplier=10_000)}),
    ("method.dpo.hyperparameters.beta", {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 50.0}}}}),
    ("hyperparameters", {"method": supervised(n_epochs=1), "hyperparameters": {"n_epochs": 2}}),
    ("integrations", {"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}),
    ("suffix", {"suffix": "x" * 65}),
    ("predictions.sample_count", {"extra_body": {"predictions": {"sample_count": 10_000}}}),
    ("bogus", {"extra_body": {"bogus": 1}}),
]


@pytest.mark.parametrize(("param", "change"), REFUSED_JOBS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(REFUSED_JOBS)])
def test_a_refused_job_is_a_bad_request_naming_its_param(full_stack: Any, param: str, change: dict[str, Any]) -> None:
    user = f"oai-refused-{uuid.uuid4()}"
    client = sdk(full_stack, user)
    training = client.files.create(file=("train.jsonl", chat_rows(4)), purpose="fine-tune")
    request = {"model": TINY_MODEL_ID, "training_file": training.id} | change
    with pytest.raises(openai.BadRequestError) as refused:
        client.fine_tuning.jobs.create(**request)
    assert refused.value.param == param, refused.value.body
    assert refused.value.body["message"]
    assert client.fine_tuning.jobs.list().data == []  # nothing was created
    assert epochscope(full_stack, user).get("/v1/jobs").json()["items"] == []


def test_other_refusals_name_their_param(full_stack: Any) -> None:
    client = sdk(full_stack, f"oai-misc-{uuid.uuid4()}")
    with pytest.raises(openai.BadRequestError) as refused:
        client.files.list(order="asc")
    assert refused.value.param == "order"
    with pytest.raises(openai.APIStatusError) as too_large:
        client.files.create(file=("big.jsonl", chat_rows(1) * (UPLOAD_MAX_BYTES // 40)), purpose="fine-tune")
    assert too_large.value.status_code == 413 and too_large.value.param == "file"
    with pytest.raises(openai.BadRequestError) as unusable:
        client.files.create(file=("notes.txt", b"hello"), purpose="fine-tune")
    assert unusable.value.param == "file"
    assert client.files.list().data == []
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=str(client.base_url), api_key="not-a-token", max_retries=0).files.list()


def test_pause_and_resume_are_refused_clearly_and_a_file_in_use_is_a_conflict(full_stack: Any) -> None:
    client = sdk(full_stack, f"oai-pause-{uuid.uuid4()}")
    training = client.files.create(file=("train.jsonl", chat_rows(4)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=TINY_MODEL_ID, training_file=training.id)
    with pytest.raises(openai.ConflictError) as in_use:  # the job (queued or running) reads it
        client.files.delete(training.id)
    assert job.id.removeprefix("ftjob-") in in_use.value.message.replace("-", "")
    for action in (client.fine_tuning.jobs.pause, client.fine_tuning.jobs.resume):
        with pytest.raises(openai.BadRequestError) as refused:
            action(job.id)
        assert refused.value.code == "unsupported_operation" and "cannot" in refused.value.message
    client.fine_tuning.jobs.cancel(job.id)
    assert wait_until(client, job.id).status == "cancelled"
    assert client.files.delete(training.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(training.id)


def test_another_users_files_and_jobs_are_not_found(full_stack: Any) -> None:
    alice, bob = sdk(full_stack, f"oai-alice-{uuid.uuid4()}"), sdk(full_stack, f"oai-bob-{uuid.uuid4()}")
    training = alice.files.create(file=("train.jsonl", chat_rows(4)), purpose="fine-tune")
    job = alice.fine_tuning.jobs.create(model=TINY_MODEL_ID, training_file=training.id)
    jobs = bob.fine_tuning.jobs
    reads: list[Callable[[], object]] = [
        lambda: bob.files.retrieve(training.id),
        lambda: bob.files.content(training.id),
        lambda: bob.files.delete(training.id),
        lambda: jobs.retrieve(job.id),
        lambda: jobs.cancel(job.id),
        lambda: jobs.pause(job.id),
        lambda: jobs.list_events(job.id),
        lambda: jobs.checkpoints.list(job.id),
        lambda: bob.files.list(after=training.id),
        lambda: jobs.list(after=job.id),
    ]
    for read in reads:
        with pytest.raises(openai.NotFoundError) as missing:
            read()
        assert missing.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as refused:
        jobs.create(model=TINY_MODEL_ID, training_file=training.id)
    assert refused.value.param == "training_file"
    assert alice.files.retrieve(training.id).id == training.id  # untouched by Bob's delete
    assert alice.fine_tuning.jobs.retrieve(job.id).status != "cancelled"  # untouched by Bob's cancel
    alice.fine_tuning.jobs.cancel(job.id)  # (the tiny job may have finished by now: nothing to assert of hers)
    wait_until(alice, job.id)
