"""Checkpoints without the stack: keep-k pruning and deletion events, a store failure, the stop rule, and the
download archive streamed in bounded memory."""

import asyncio
import hashlib
import io
import tarfile
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest
from obstore.store import LocalStore

from epochscope.checkpoint_cli import extract_checkpoint
from epochscope_api.data.checkpoints import StoredCheckpoint
from epochscope_api.exports.checkpoint_archive import archive_bytes, tar_stream
from epochscope_schemas.checkpoints import CheckpointsConfig, StopWhen
from epochscope_schemas.events import (
    CheckpointDeletedEvent,
    CheckpointEvent,
    CheckpointFile,
    RoundSummaryEvent,
    WarningEvent,
    encode_event,
)
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.checkpoint_store import DirectCheckpointStore, within_allowance
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.checkpointing import Checkpointer
from epochscope_trainer.job.stopping import StopRule
from epochscope_writer.domain.decoding import Rejection, decode_record

JOB = JobIdentity(uuid.uuid4(), "token")


class FakeModel:
    """Writes one weights file whose content names the round it came from."""

    def __init__(self) -> None:
        self.round = -1

    def save_pretrained(self, folder: Path, safe_serialization: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "model.safetensors").write_bytes(f"weights of round {self.round}".encode())


class FakeTokenizer:
    def save_pretrained(self, folder: Path) -> None:
        (folder / "tokenizer.json").write_text("{}")


def summary(index: int, exact_match: float | None, trigger: str = "epoch") -> RoundSummaryEvent:
    return RoundSummaryEvent(
        **JOB.envelope(),
        round_index=index,
        epoch=float(index),
        step=index * 2,
        trigger=trigger,
        predictions=3,
        scored=3,
        mean_exact_match=exact_match,
    )


def run_rounds(
    tmp_path: Path, config: CheckpointsConfig, metrics: list[float | None], allowance: int | None = None
) -> tuple[list, Path]:
    published: list[Any] = []
    store_dir = tmp_path / "store"
    store = LocalStore(store_dir, mkdir=True)
    work = tmp_path / "work"
    checkpointer = Checkpointer(
        config,
        DirectCheckpointStore(store, JOB.job_id, work),
        JOB,
        lambda topic, e: published.append(e),
        work,
        byte_allowance=allowance,
    )
    model = FakeModel()
    for index, value in enumerate(metrics):
        model.round = index
        checkpointer.on_round(model, FakeTokenizer(), summary(index, value), stalls_training=True)
    checkpointer.save_final(model, FakeTokenizer(), 99, 9.0)
    checkpointer.close()
    return published, store_dir / "jobs" / str(JOB.job_id) / "checkpoints"


def test_every_round_keeps_one_per_round_and_the_final_weights(tmp_path: Path) -> None:
    published, folder = run_rounds(tmp_path, CheckpointsConfig(mode="every_round"), [0.0, 0.5, 0.2])
    saved = [e for e in published if isinstance(e, CheckpointEvent)]
    assert [(e.round_index, e.final) for e in saved] == [(0, False), (1, False), (2, False), (None, True)]
    assert sorted(p.name for p in folder.iterdir()) == ["final", "round-0", "round-1", "round-2"]
    weights = (folder / "round-1" / "model.safetensors").read_bytes()
    assert weights == b"weights of round 1"
    file = next(f for f in saved[1].files if f.name == "model.safetensors")
    assert (file.bytes, file.sha256) == (len(weights), hashlib.sha256(weights).hexdigest())
    assert saved[1].metrics["mean_exact_match"] == 0.5 and saved[1].stall_ms == saved[1].save_ms > 0


def test_a_background_rounds_save_claims_no_measured_stall(tmp_path: Path) -> None:
    published: list[Any] = []
    checkpointer = Checkpointer(
        CheckpointsConfig(mode="every_round"),
        DirectCheckpointStore(LocalStore(tmp_path / "s", mkdir=True), JOB.job_id, tmp_path),
        JOB,
        lambda _t, e: published.append(e),
        tmp_path,
    )
    checkpointer.on_round(FakeModel(), FakeTokenizer(), summary(0, 0.5), stalls_training=False)
    checkpointer.close()
    (saved,) = [e for e in published if isinstance(e, CheckpointEvent)]
    assert saved.save_ms > 0 and saved.stall_ms is None  # it ran beside training: not a measured zero


def test_best_keeps_k_by_the_metric_and_deletes_the_pruned_objects(tmp_path: Path) -> None:
    config = CheckpointsConfig(mode="best", metric="mean_exact_match", keep=2)
    published, folder = run_rounds(tmp_path, config, [0.1, 0.3, 0.2, 0.6, 0.3, None])
    saved = [e.round_index for e in published if isinstance(e, CheckpointEvent)]
    deleted = [e.round_index for e in published if isinstance(e, CheckpointDeletedEvent)]
    assert saved == [0, 1, 2, 3, None]  # round 4 ties round 1 (the earlier wins); round 5 has no value
    assert deleted == [0, 2]
    assert sorted(p.name for p in folder.iterdir() if any(p.iterdir())) == ["final", "round-1", "round-3"]


def test_a_store_failure_is_a_warning_and_later_checkpoints_are_saved(tmp_path: Path) -> None:
    blocked = tmp_path / "store" / "jobs" / str(JOB.job_id) / "checkpoints"
    blocked.mkdir(parents=True)
    (blocked / "round-1").write_text("a file where the checkpoint's folder would go: every put under it fails")
    published, folder = run_rounds(tmp_path, CheckpointsConfig(mode="every_round"), [0.0, 0.1, 0.2])
    warnings = [e for e in published if isinstance(e, WarningEvent)]
    assert [w.code for w in warnings] == ["checkpoint_failed"] and "round 1" in warnings[0].message
    saved = [e.round_index for e in published if isinstance(e, CheckpointEvent)]
    assert saved == [0, 2, None]


CHECKPOINT_BYTES = len(b"weights of round 0") + len(b"{}")  # what FakeModel and FakeTokenizer write


def test_a_checkpoint_past_the_byte_allowance_is_not_kept_and_is_a_warning(tmp_path: Path) -> None:
    """Room for two checkpoints: rounds 0 and 1 are kept; round 2 and the final weights are not uploaded."""
    allowance = 2 * CHECKPOINT_BYTES + 1
    published, folder = run_rounds(tmp_path, CheckpointsConfig(mode="every_round"), [0.0, 0.5, 0.2], allowance)
    assert [e.round_index for e in published if isinstance(e, CheckpointEvent)] == [0, 1]
    warnings = [e for e in published if isinstance(e, WarningEvent)]
    assert [w.code for w in warnings] == ["checkpoint_quota", "checkpoint_quota"]
    assert warnings[0].message.startswith("checkpoint round-2 (round 2) not kept: ")
    assert f"over the {allowance} bytes left of the owner's checkpoint quota" in warnings[0].message
    assert "the final weights" in warnings[1].message
    assert sorted(p.name for p in folder.iterdir()) == ["round-0", "round-1"]
    assert not list((tmp_path / "work").iterdir())  # the refused saves' local files are gone too


def test_a_better_round_replaces_the_kept_one_within_the_allowance(tmp_path: Path) -> None:
    """best keep 1 with room for one checkpoint: the better round displaces the kept one (its bytes count as
    freed); the final weights, beside it, do not fit."""
    config = CheckpointsConfig(mode="best", metric="mean_exact_match", keep=1)
    published, folder = run_rounds(tmp_path, config, [0.1, 0.6, 0.2], allowance=CHECKPOINT_BYTES)
    assert [e.round_index for e in published if isinstance(e, CheckpointEvent)] == [0, 1]
    assert [e.round_index for e in published if isinstance(e, CheckpointDeletedEvent)] == [0]
    assert [w.code for w in published if isinstance(w, WarningEvent)] == ["checkpoint_quota"]
    assert sorted(p.name for p in folder.iterdir() if any(p.iterdir())) == ["round-1"]


def test_within_allowance() -> None:
    assert within_allowance(None, 10**15, 10**15)
    assert within_allowance(100, 60, 40) and not within_allowance(100, 61, 40)
    assert within_allowance(0, 0, 0) and not within_allowance(0, 0, 1)


def test_the_stop_rule_threshold_held_for_n_rounds_and_patience() -> None:
    rule = StopRule(StopWhen(metric="mean_exact_match", threshold=1.0, rounds=2))
    outcomes = [rule.observe(summary(i, v, "baseline" if i == 0 else "epoch")) for i, v in enumerate([1, 1, 0, 1, 1])]
    assert outcomes[:4] == [None] * 4
    assert outcomes[4] == "stopped early at round 4: mean exact match 1 for 2 rounds"
    patience = StopRule(StopWhen(metric="mean_exact_match", patience=2))
    results = [patience.observe(summary(i, v)) for i, v in enumerate([0.2, 0.5, 0.4, 0.5])]
    reason = "stopped early at round 3: mean exact match did not improve on 0.5 for 2 rounds"
    assert results == [None, None, None, reason]


def test_the_download_is_a_tar_streamed_in_bounded_memory(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, mkdir=True)
    big = tmp_path / "ck" / "model.safetensors"
    big.parent.mkdir()
    size = 48 << 20
    with big.open("wb") as out:
        for _ in range(size >> 20):
            out.write(bytes(range(256)) * 4096)
    (tmp_path / "ck" / "config.json").write_text('{"a": 1}')
    files = [{"name": "config.json", "bytes": 8}, {"name": "model.safetensors", "bytes": size}]
    stored = StoredCheckpoint(uuid.uuid4(), 3, "ck", files)

    async def consume() -> tuple[int, int, bytes]:
        total, head = 0, b""
        tracemalloc.start()
        async for chunk in tar_stream(store, stored, "round-3"):
            total += len(chunk)
            if len(head) < 4096:
                head += chunk
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return total, peak, head

    total, peak, head = asyncio.run(consume())
    assert total == archive_bytes(files)
    print(f"peak Python memory streaming a {size >> 20} MiB checkpoint: {peak / (1 << 20):.1f} MiB")
    assert peak < size / 10, f"peak {peak} bytes for a {size}-byte checkpoint"
    with tarfile.open(fileobj=io.BytesIO(head), mode="r|") as archive:
        first = archive.next()
        assert first is not None and first.name == "round-3/config.json"
        assert archive.extractfile(first).read() == b'{"a": 1}'  # type: ignore[union-attr]


def test_the_writer_stores_a_checkpoint_over_2_gib_and_dead_letters_a_bad_metric() -> None:
    event = CheckpointEvent(
        **JOB.envelope(),
        checkpoint_id=uuid.uuid4(),
        round_index=1,
        step=2,
        epoch=1.0,
        key="jobs/x/checkpoints/round-1",
        files=[CheckpointFile(name="model.safetensors", bytes=3 << 30, sha256="0" * 64)],
        bytes=3 << 30,
        sha256="1" * 64,
        metrics={"mean_f1": 0.5, "mean_exact_match": None},
    )
    assert isinstance(decode_record(TRAINING_STATUS, encode_event(event)), CheckpointEvent)
    raw = encode_event(event).replace(b'"mean_f1":0.5', b'"mean_f1":NaN')
    assert isinstance(decode_record(TRAINING_STATUS, raw), Rejection)


def tar_of(members: list[tuple[tarfile.TarInfo, bytes]]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def test_the_cli_unpacks_only_the_listed_files_and_refuses_anything_else(tmp_path: Path) -> None:
    checkpoint = {"final": False, "round_index": 2, "files": [{"name": "model.safetensors"}, {"name": "config.json"}]}
    good = [(tarfile.TarInfo("round-2/model.safetensors"), b"weights"), (tarfile.TarInfo("round-2/config.json"), b"{}")]
    folder = extract_checkpoint(tar_of(good), tmp_path / "ok", checkpoint)
    assert folder == tmp_path / "ok" / "round-2" and (folder / "model.safetensors").read_bytes() == b"weights"
    link = tarfile.TarInfo("round-2/config.json")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    hostile = [
        [(tarfile.TarInfo("round-2/../../escape"), b"x")],  # a path that climbs out
        [(tarfile.TarInfo("round-2/model.safetensors"), b"weights"), (link, b"")],  # a link in a listed name
        [(tarfile.TarInfo("round-2/model.safetensors"), b"weights")],  # a listed file missing
    ]
    for index, members in enumerate(hostile):
        with pytest.raises(ValueError):
            extract_checkpoint(tar_of(members), tmp_path / f"bad-{index}", checkpoint)
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
