"""A trainer with the dispatcher's public keys runs only the starts the dispatcher signed (Ed25519) with its token
sealed for this trainer, against fake Kafka adapters: one addressed to it that is unsigned, signed with another key or
with the old shared HMAC key, changed after signing (another dataset), with its token sealed for another trainer or
in the clear, is dead-lettered with the reason and without its job token, and nothing of it is read (no job folder,
no child, no status). Another trainer's start is left alone. A key being rotated in is accepted beside the old one.
The real-broker test is in test_trainer_integration.py."""

import asyncio
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from start_keys import DISPATCH_PUBLIC_KEY, SIGNING_KEY, dispatched, new_sealing_key
from test_trainer_supervision import harness, start_event

from epochscope_runtime.command_signing import _canonical, signed_start
from epochscope_runtime.dispatch_keys import load_private_key, new_key_pair
from epochscope_schemas.topics import JOB_COMMANDS, dead_letter_topic
from epochscope_trainer.child_protocol import child_env

FORGED = "start_forged: the signature does not verify against the dispatcher's public key(s)"
REMOVED = " (job_token removed from the payload)"


def reasons(sent: list) -> list[str]:
    return [dict(headers or [])["reason"].decode() for topic, _, _, headers in sent if topic.endswith(".dlq")]


def hmac_signed(value: bytes, shared_key: str) -> bytes:
    """A start signed the old way, with an HMAC key every trainer held (and so could sign with)."""
    document = json.loads(value)
    document["signature"] = hmac.new(shared_key.encode(), _canonical(document), hashlib.sha256).hexdigest()
    return json.dumps(document).encode()


async def test_only_a_start_the_dispatcher_signed_and_sealed_for_this_trainer_runs(tmp_path: Path) -> None:
    genuine = dispatched(start_event("exit:0"))
    other_private, _ = new_key_pair()
    unsigned = start_event("exit:0")
    forged = dispatched(start_event("exit:0"), signing_key=load_private_key(other_private))
    by_hmac = hmac_signed(dispatched(start_event("exit:0")).model_dump_json().encode(), "shared-dispatch-key-" * 2)
    moved = json.loads(dispatched(start_event("exit:0")).model_dump_json())
    moved["inputs"]["train"]["key"] = "datasets/someone-else/theirs.jsonl"  # changed after signing
    _, another_trainer = new_sealing_key()
    not_for_me = dispatched(start_event("exit:0"), sealing_public=another_trainer)
    in_clear = signed_start(start_event("exit:0"), SIGNING_KEY)  # signed, but its token not sealed
    elsewhere = dispatched(start_event("exit:0").model_copy(update={"trainer_id": "trainer-2"}))
    values = [e.model_dump_json().encode() for e in (unsigned, forged)] + [by_hmac, json.dumps(moved).encode()]
    values += [e.model_dump_json().encode() for e in (not_for_me, in_clear, elsewhere, genuine)]
    _, rotated_in = new_key_pair()  # a rotation: the next key's public half beside the current one
    h = harness(tmp_path, values, dispatch_public_keys=f"{rotated_in}, {DISPATCH_PUBLIC_KEY}")
    await asyncio.wait_for(h.service.run(), 30)
    assert h.commands == [tmp_path / str(genuine.job_id)]  # the genuine one only: nothing else was run or written
    assert [topic for topic, *_ in h.producer.sent] == [dead_letter_topic(JOB_COMMANDS)] * 6
    letters = [json.loads(value or b"") for _, value, _, _ in h.producer.sent]
    assert not [letter for letter in letters if letter.get("job_token") or letter.get("sealed_job_token")]
    assert all(b"token-1" not in (value or b"") for _, value, _, _ in h.producer.sent)  # no token, sealed or not
    assert reasons(h.producer.sent) == [
        "start_unsigned: no signature" + REMOVED,
        FORGED + REMOVED,
        FORGED + REMOVED,
        FORGED + REMOVED,
        "token_unsealable: the token was not sealed for this trainer's key (or not for this start)" + REMOVED,
        "start_token_in_clear: a signed start carries its job token sealed for its trainer" + REMOVED,
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [str(genuine.job_id)]
    seen = json.loads((tmp_path / str(genuine.job_id) / "seen.json").read_text())
    assert seen["identity"]["JOB_TOKEN"] == "token-1"  # opened here, for the child


def test_the_job_process_never_gets_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    private, _ = new_key_pair()
    sealing, _ = new_sealing_key()
    monkeypatch.setenv("EPOCHSCOPE_DISPATCH_PRIVATE_KEY", private)
    monkeypatch.setenv("EPOCHSCOPE_TRAINER_SEALING_KEY", sealing)
    env = child_env(start_event("exit:0"))
    assert "EPOCHSCOPE_DISPATCH_PRIVATE_KEY" not in env and "EPOCHSCOPE_TRAINER_SEALING_KEY" not in env
