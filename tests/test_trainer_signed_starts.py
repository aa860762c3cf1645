"""A trainer with the dispatch key runs only the starts the dispatcher signed with it, against fake Kafka adapters:
one addressed to it that is unsigned, forged, or changed after signing (re-addressed, another dataset) is
dead-lettered with the reason and without its job token, and nothing of it is read (no job folder, no child, no
status). Another trainer's start is left alone. The real-broker test is in test_trainer_integration.py."""

import asyncio
import json
from pathlib import Path

import pytest
from test_trainer_supervision import harness, start_event

from epochscope_runtime.command_signing import signed_start
from epochscope_schemas.topics import JOB_COMMANDS, dead_letter_topic
from epochscope_trainer.child_protocol import child_env

KEY = "dispatch-key-of-the-signed-start-tests-0123"


def reasons(sent: list) -> list[str]:
    return [dict(headers or [])["reason"].decode() for topic, _, _, headers in sent if topic.endswith(".dlq")]


async def test_only_a_start_the_dispatcher_signed_runs(tmp_path: Path) -> None:
    genuine = signed_start(start_event("exit:0"), KEY)
    unsigned = start_event("exit:0")
    forged = signed_start(start_event("exit:0"), "a-guessed-dispatch-key-0123456789abcdef")
    moved = json.loads(signed_start(start_event("exit:0"), KEY).model_dump_json())
    moved["inputs"]["train"]["key"] = "datasets/someone-else/theirs.jsonl"  # changed after signing
    elsewhere = signed_start(start_event("exit:0").model_copy(update={"trainer_id": "trainer-2"}), KEY)
    values = [e.model_dump_json().encode() for e in (unsigned, forged)] + [json.dumps(moved).encode()]
    values += [elsewhere.model_dump_json().encode(), genuine.model_dump_json().encode()]
    h = harness(tmp_path, values, dispatch_key=KEY)
    await asyncio.wait_for(h.service.run(), 30)
    assert h.commands == [tmp_path / str(genuine.job_id)]  # the genuine one only: nothing else was run or written
    assert [topic for topic, *_ in h.producer.sent] == [dead_letter_topic(JOB_COMMANDS)] * 3
    assert all(b"token-1" not in (value or b"") for _, value, _, _ in h.producer.sent)  # no token in a dead letter
    forged_reason = "start_forged: the signature does not verify against the dispatch key"
    assert reasons(h.producer.sent) == [
        "start_unsigned: no signature (job_token removed from the payload)",
        f"{forged_reason} (job_token removed from the payload)",
        f"{forged_reason} (job_token removed from the payload)",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [str(genuine.job_id)]


def test_the_job_process_never_gets_the_dispatch_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPOCHSCOPE_DISPATCH_KEY", KEY)
    assert "EPOCHSCOPE_DISPATCH_KEY" not in child_env(start_event("exit:0"))
