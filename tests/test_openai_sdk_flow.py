"""The official `openai` SDK, unchanged, runs OpenAI's supervised fine-tuning flow against the real stack (tiny
model): upload, create, retrieve until succeeded, events across pages, checkpoints that resolve to Epochscope's,
the metadata filter, the cancel of a second job, and a DPO job from an OpenAI-format preference file. Every
OpenAI object is checked against the same resource read through Epochscope's own API."""

import json
import uuid
from typing import Any

import pytest
from openai_sdk import epochscope, sdk, wait_until
from tiny_model import TINY_MODEL_ID
from uploads import chat_rows

from epochscope_api.openai_compat.model_names import resolve_model_name
from epochscope_schemas.dataset_formats import RowFormat

pytestmark = pytest.mark.stack

PREDICTIONS = {"sample_count": 3, "max_new_tokens": 8}  # Epochscope's own options, as the SDK's extra_body
GRADERS = [
    {"name": "always", "type": "regex", "pattern": "^"},  # every answer passes: a pass rate of 1
    {"name": "exact", "type": "string_check", "operation": "equals"},
]


def test_the_supervised_flow_end_to_end(full_stack: Any) -> None:
    user = f"oai-{uuid.uuid4()}"
    client, own = sdk(full_stack, user), epochscope(full_stack, user)
    content = chat_rows(8) + b"not json\n"  # a malformed row: the trainer skips it with a warning
    uploaded = client.files.create(file=("train.jsonl", content), purpose="fine-tune")
    assert (uploaded.object, uploaded.purpose, uploaded.status, uploaded.bytes) == (
        "file",
        "fine-tune",
        "processed",
        len(content),
    )
    assert client.files.retrieve(uploaded.id) == uploaded
    assert uploaded.status_details.startswith("8 usable rows of 9") and "1 malformed" in uploaded.status_details
    assert client.files.content(uploaded.id).read() == content
    dataset = own.get(f"/v1/datasets/{uuid.UUID(uploaded.id.removeprefix('file-'))}").json()
    assert (dataset["bytes"], dataset["usable_rows"]) == (len(content), 8)  # the file is a dataset
    assert uploaded.id in [listed.id for listed in client.files.list()]

    job = client.fine_tuning.jobs.create(
        model=TINY_MODEL_ID,
        training_file=uploaded.id,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 5}},
        },
        suffix="sdk-flow",
        seed=7,
        metadata={"run": "flow"},
        extra_body={"predictions": PREDICTIONS | {"graders": GRADERS}},
    )
    assert (job.object, job.status, job.training_file, job.seed) == ("fine_tuning.job", "queued", uploaded.id, 7)
    hyper = job.method.supervised.hyperparameters
    assert (hyper.n_epochs, hyper.batch_size, hyper.learning_rate_multiplier) == (2, 4, 5)
    assert hyper.learning_rate == pytest.approx(1e-3)  # 5 times the base rate, shown explicitly

    second = client.fine_tuning.jobs.create(model=TINY_MODEL_ID, training_file=uploaded.id, metadata={"run": "other"})
    client.fine_tuning.jobs.cancel(second.id)
    assert wait_until(client, second.id).status == "cancelled"

    done = wait_until(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.finished_at is not None and done.error is None
    tokens = own.get(f"/v1/datasets/{dataset['dataset_id']}").json()["report"]["tokens"][TINY_MODEL_ID]
    assert done.trained_tokens == (tokens["prompt_tokens"] + tokens["completion_tokens"]) * 2  # two epochs
    native = own.get(f"/v1/jobs/{done.epochscope_job_id}").json()  # type: ignore[attr-defined]
    assert (native["status"], native["config"]["learning_rate"], native["name"]) == ("completed", 1e-3, "sdk-flow")
    assert native["config"]["predictions"]["enabled"] and native["config"]["predictions"]["seed"] == 7

    checkpoints = own.get(f"/v1/jobs/{native['job_id']}/checkpoints").json()["items"]
    final = next(checkpoint for checkpoint in checkpoints if checkpoint["final"])
    ref = resolve_model_name(done.fine_tuned_model or "")
    assert ref is not None and done.fine_tuned_model.startswith(f"ft:{TINY_MODEL_ID}:sdk-flow:")
    assert (str(ref.job_id), str(ref.checkpoint_id)) == (native["job_id"], final["checkpoint_id"])

    listed = client.fine_tuning.jobs.checkpoints.list(job.id, limit=100)
    assert len(listed.data) == len(checkpoints) >= 1
    for shown in listed.data:
        ref = resolve_model_name(shown.fine_tuned_model_checkpoint)
        native_checkpoint = next(c for c in checkpoints if c["checkpoint_id"] == str(ref.checkpoint_id))
        assert shown.step_number == native_checkpoint["step"] and shown.metrics.step == native_checkpoint["step"]
        download = own.get(shown.download_url)  # type: ignore[attr-defined]
        assert download.status_code == 200 and len(download.content) == int(download.headers["content-length"])

    first_page = client.fine_tuning.jobs.list_events(job.id, limit=3)
    assert first_page.has_more and len(first_page.data) == 3
    events = list(first_page)  # the SDK pages on with `after` until has_more is false
    assert len({event.id for event in events}) == len(events)
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    assert events[-1].message == "Created fine-tuning job" and events[0].message.startswith(
        "The job has successfully completed"
    )
    warnings = [event for event in events if event.level == "warn"]
    assert [event.message.split(":")[0] for event in warnings] == [w["code"] for w in reversed(native["warnings"])]
    assert "rows_skipped" in [w["code"] for w in native["warnings"]]
    steps = [event for event in events if event.type == "metrics" and "train_loss" in (event.data or {})]
    progress = own.get(f"/v1/jobs/{native['job_id']}/progress").json()["items"]
    assert sorted(event.data["step"] for event in steps) == [point["step"] for point in progress]
    rounds = [event for event in events if event.type == "metrics" and "round_index" in (event.data or {})]
    assert sorted(event.data["round_index"] for event in rounds) == [r["round_index"] for r in native["rounds"]]
    pass_rates = {r["round_index"]: {n: g["pass_rate"] for n, g in r["graders"].items()} for r in native["rounds"]}
    assert {event.data["round_index"]: event.data["graders"] for event in rounds} == pass_rates
    assert all(rates["always"] == 1.0 and "exact" in rates for rates in pass_rates.values())
    again = client.fine_tuning.jobs.list_events(job.id, after=first_page.data[-1].id, limit=2)
    assert [event.id for event in again.data] == [event.id for event in events[3:5]]  # ids are stable

    assert [found.id for found in client.fine_tuning.jobs.list(metadata={"run": "flow"})] == [job.id]
    assert [found.id for found in client.fine_tuning.jobs.list(metadata={"run": "other"})] == [second.id]
    page = client.fine_tuning.jobs.list(limit=1)
    assert page.has_more and [found.id for found in page] == [second.id, job.id]


def preference_rows(count: int) -> bytes:
    """OpenAI's preference format: `input.messages`, `preferred_output` and `non_preferred_output`."""
    rows = [
        {
            "input": {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}]},
            "preferred_output": [{"role": "assistant", "content": f"{i + i}"}],
            "non_preferred_output": [{"role": "assistant", "content": "hello world"}],
        }
        for i in range(count)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@pytest.mark.skipif(
    not any("preference" in row_format.value for row_format in RowFormat),
    reason="preference rows and the DPO trainer land with the dpo branch",
)
def test_a_dpo_job_from_an_openai_preference_file(full_stack: Any) -> None:
    client = sdk(full_stack, f"oai-dpo-{uuid.uuid4()}")
    uploaded = client.files.create(file=("prefs.jsonl", preference_rows(8)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=TINY_MODEL_ID,
        training_file=uploaded.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1, "batch_size": 4}}},
        extra_body={"predictions": PREDICTIONS},
    )
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2
    done = wait_until(client, job.id)
    assert done.status == "succeeded", done.error
    assert any(event.type == "metrics" for event in client.fine_tuning.jobs.list_events(job.id, limit=100).data)
