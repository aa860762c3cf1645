"""A job's child asks the trainer service to upload its checkpoints (it holds no store credentials): the request
protocol against a real folder store, with the child's side in a thread as in the job. The service builds every key
from the job id; a checkpoint or file name that is not one, or a file that is a link out of the checkpoint's folder,
is refused and nothing is uploaded. The service holds the job to its checkpoint byte allowance itself (the child's
count is the child's word): past it, a put is refused with a warning naming the limit, and nothing of it is kept;
nor is anything of a put that fails halfway. The inputs the service stages: a store failure is the job's, not the
service's."""

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from obstore.store import LocalStore
from test_trainer_supervision import STORE, harness, start_event

from epochscope_schemas.events import WarningEvent
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer import checkpoint_store, input_staging
from epochscope_trainer.checkpoint_store import (
    CHECKPOINTS_DIR,
    CheckpointBytes,
    DirectCheckpointStore,
    RequestedCheckpointStore,
    serve_requests,
)

JOB_ID = uuid.uuid4()


async def asked(
    tmp_path: Path,
    requests: list[tuple[str, str, list[str]]],
    allowance: int | None = None,
    warnings: list[tuple[str, str]] | None = None,
) -> list[str]:
    """Run the child's requests in a thread against the service's loop; each one's outcome ("ok" or the error).
    The service's warnings go to `warnings`."""
    store = DirectCheckpointStore(
        LocalStore(tmp_path / "store", mkdir=True), JOB_ID, tmp_path / CHECKPOINTS_DIR, allowance
    )
    child = RequestedCheckpointStore(tmp_path, timeout_s=30)
    exited = asyncio.Event()

    async def warn(code: str, message: str) -> None:
        (warnings if warnings is not None else []).append((code, message))

    service = asyncio.create_task(serve_requests(store, tmp_path, exited, warn))

    def run() -> list[str]:
        outcomes = []
        for op, name, files in requests:
            try:
                getattr(child, op)(name, files)
                outcomes.append("ok")
            except RuntimeError as exc:
                outcomes.append(str(exc))
        return outcomes

    try:
        return await asyncio.to_thread(run)
    finally:
        exited.set()
        await service


def saved(tmp_path: Path, name: str, files: dict[str, bytes]) -> None:
    folder = tmp_path / CHECKPOINTS_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    for file, data in files.items():
        (folder / file).write_bytes(data)


async def test_the_service_uploads_and_deletes_under_the_jobs_prefix_it_builds(tmp_path: Path) -> None:
    saved(tmp_path, "round-2", {"model.safetensors": b"weights", "config.json": b"{}"})
    outcomes = await asked(tmp_path, [("put", "round-2", ["model.safetensors", "config.json"])])
    assert outcomes == ["ok"]
    uploaded = tmp_path / "store" / "jobs" / str(JOB_ID) / "checkpoints" / "round-2"
    assert (uploaded / "model.safetensors").read_bytes() == b"weights" and (uploaded / "config.json").exists()
    assert await asked(tmp_path, [("delete", "round-2", ["model.safetensors", "config.json"])]) == ["ok"]
    assert not [p for p in uploaded.iterdir() if p.is_file()]


async def test_names_that_are_not_a_checkpoints_and_links_out_of_its_folder_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "trainer-secrets.env"
    outside.write_text("EPOCHSCOPE_STORE_SECRET_ACCESS_KEY=not-for-the-job")
    saved(tmp_path, "final", {"ok.bin": b"x"})
    os.symlink(outside, tmp_path / CHECKPOINTS_DIR / "final" / "linked.bin")
    os.symlink(tmp_path, tmp_path / CHECKPOINTS_DIR / "round-7")  # a checkpoint folder that is a link
    outcomes = await asked(
        tmp_path,
        [
            ("put", "../../datasets/someone", ["ok.bin"]),  # a key of the child's making
            ("put", "final", ["../trainer-secrets.env"]),
            ("put", "final", ["linked.bin"]),
            ("put", "round-7", ["trainer-secrets.env"]),
            ("delete", "datasets", ["x"]),
        ],
    )
    assert outcomes[0].endswith("ValueError: not a checkpoint name: '../../datasets/someone'")
    assert "a checkpoint file's name is a plain name" in outcomes[1]
    assert "OSError" in outcomes[2] and "its folder is a link" in outcomes[3] and "not a checkpoint name" in outcomes[4]
    assert not [p for p in (tmp_path / "store").rglob("*") if p.is_file()]  # nothing uploaded


def test_the_checkpoint_bytes_count_what_is_in_the_store_against_the_allowance() -> None:
    stored = CheckpointBytes(100)
    assert stored.refusal("round-1", {"a": 60, "b": 40}) is None  # exactly the allowance
    stored.put("round-1", "a", 60)
    refusal = stored.refusal("round-2", {"a": 41})
    assert refusal is not None and "41 bytes would take this job's checkpoints to 101 bytes" in refusal
    assert "allowance of 100 bytes" in refusal
    assert stored.refusal("round-1", {"a": 100}) is None  # a file put again replaces its bytes
    stored.delete("round-1", ["a"])
    assert stored.refusal("round-2", {"a": 100}) is None
    assert CheckpointBytes(None).refusal("final", {"a": 10**15}) is None  # no allowance: no limit
    assert CheckpointBytes(0).refusal("final", {"a": 1}) is not None


async def test_the_service_refuses_a_checkpoint_past_the_jobs_allowance_and_keeps_nothing_of_it(
    tmp_path: Path,
) -> None:
    saved(tmp_path, "round-1", {"model.safetensors": b"w" * 60})
    saved(tmp_path, "round-2", {"model.safetensors": b"w" * 30, "config.json": b"c" * 20})
    warnings: list[tuple[str, str]] = []
    requests = [
        ("put", "round-1", ["model.safetensors"]),
        ("put", "round-2", ["model.safetensors", "config.json"]),  # 60 + 50 > 100: the child's count is not trusted
        ("delete", "round-1", ["model.safetensors"]),
        ("put", "round-2", ["model.safetensors", "config.json"]),  # 50 once round-1 is gone
    ]
    outcomes = await asked(tmp_path, requests, allowance=100, warnings=warnings)
    assert outcomes[0] == outcomes[2] == outcomes[3] == "ok"
    assert "OverAllowance" in outcomes[1] and "allowance of 100 bytes" in outcomes[1]
    ((code, message),) = warnings  # the service's own warning event, naming the limit
    assert code == "checkpoint_quota" and "to 110 bytes, over the job's allowance of 100 bytes" in message
    checkpoints = tmp_path / "store" / "jobs" / str(JOB_ID) / "checkpoints"
    assert sorted(p.name for p in checkpoints.rglob("*") if p.is_file()) == ["config.json", "model.safetensors"]
    assert (checkpoints / "round-2" / "model.safetensors").stat().st_size == 30


async def test_a_put_that_fails_halfway_keeps_nothing_and_a_file_is_read_to_its_counted_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_put = checkpoint_store.obstore.put
    calls: list[str] = []

    def put(store: object, key: str, chunks: object) -> None:
        calls.append(key)
        if key.endswith("/b.bin"):
            raise OSError("the store went away")
        name, file = key.split("/")[-2:]
        (tmp_path / CHECKPOINTS_DIR / name / file).write_bytes(b"a" * 10_000)  # grows after it was counted
        real_put(store, key, chunks)

    monkeypatch.setattr(checkpoint_store.obstore, "put", put)
    saved(tmp_path, "final", {"a.bin": b"a" * 10, "b.bin": b"b"})
    saved(tmp_path, "round-1", {"a.bin": b"a" * 10})
    outcomes = await asked(tmp_path, [("put", "final", ["a.bin", "b.bin"]), ("put", "round-1", ["a.bin"])], 19)
    assert "OSError: the store went away" in outcomes[0] and outcomes[1] == "ok"  # 10 + 10 > 19: final's were freed
    checkpoints = tmp_path / "store" / "jobs" / str(JOB_ID) / "checkpoints"
    assert [p.relative_to(checkpoints) for p in checkpoints.rglob("*") if p.is_file()] == [Path("round-1/a.bin")]
    assert (checkpoints / "round-1" / "a.bin").read_bytes() == b"a" * 10  # its size when counted, no more
    assert len(calls) == 3


# A job's process that does not count: it saves 50 bytes and asks the service to upload them, whatever its allowance.
OVERSPENDING_CHILD = """
import sys
from pathlib import Path
from epochscope_trainer.checkpoint_store import CHECKPOINTS_DIR, RequestedCheckpointStore
job_dir = Path(sys.argv[1])
(job_dir / CHECKPOINTS_DIR / "final").mkdir(parents=True)
(job_dir / CHECKPOINTS_DIR / "final" / "w.bin").write_bytes(b"w" * 50)
try:
    RequestedCheckpointStore(job_dir, timeout_s=20).put("final", ["w.bin"])
    (job_dir / "outcome").write_text("uploaded")
except RuntimeError as exc:
    (job_dir / "outcome").write_text(str(exc))
"""


async def test_the_trainer_service_holds_a_job_that_does_not_count_to_its_allowance(tmp_path: Path) -> None:
    event = start_event("exit:0")
    event = event.model_copy(update={"inputs": event.inputs.model_copy(update={"checkpoint_bytes_max": 49})})
    command = [sys.executable, "-c", OVERSPENDING_CHILD]
    h = harness(tmp_path / "work", [event.model_dump_json().encode()], lambda job_dir: [*command, str(job_dir)])
    await asyncio.wait_for(h.service.run(), 60)
    assert "OverAllowance" in (tmp_path / "work" / str(event.job_id) / "outcome").read_text()
    (warning,) = [WarningEvent.model_validate_json(v or b"") for t, v, _, _ in h.producer.sent if t == TRAINING_STATUS]
    assert (warning.job_id, warning.job_token, warning.attempt_id) == (event.job_id, "token-1", event.attempt_id)
    assert warning.code == "checkpoint_quota" and "50 bytes" in warning.message and "of 49 bytes" in warning.message
    assert not (STORE.local_dir / "jobs" / str(event.job_id)).exists()  # nothing of it uploaded


def test_a_request_the_service_never_answers_times_out(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match="did not answer within 0.2s"):
        RequestedCheckpointStore(tmp_path, timeout_s=0.2).put("final", ["a"])


def test_a_store_failure_while_staging_fails_the_job_not_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*_: object) -> int:
        raise RuntimeError("the store is unreachable")

    inputs = start_event("exit:0").inputs
    monkeypatch.setattr(input_staging, "download", unreachable)  # a store error that is not a missing object
    input_staging.stage_inputs(LocalStore(tmp_path / "store", mkdir=True), inputs, tmp_path / "inputs")
    with pytest.raises(input_staging.InputError, match="RuntimeError\\('the store is unreachable'\\)"):
        input_staging.staged_input(tmp_path / "inputs", inputs.train, "train")  # the child reports it, failing
