"""A job's child asks the trainer service to upload its checkpoints (it holds no store credentials): the request
protocol against a real folder store, with the child's side in a thread as in the job. The service builds every key
from the job id; a checkpoint or file name that is not one, or a file that is a link out of the checkpoint's folder,
is refused and nothing is uploaded. The inputs the service stages: a store failure is the job's, not the
service's."""

import asyncio
import os
import uuid
from pathlib import Path

import pytest
from obstore.store import LocalStore
from test_trainer_supervision import start_event

from epochscope_trainer import input_staging
from epochscope_trainer.checkpoint_store import (
    CHECKPOINTS_DIR,
    DirectCheckpointStore,
    RequestedCheckpointStore,
    serve_requests,
)

JOB_ID = uuid.uuid4()


async def asked(tmp_path: Path, requests: list[tuple[str, str, list[str]]]) -> list[str]:
    """Run the child's requests in a thread against the service's loop; each one's outcome ("ok" or the error)."""
    store = DirectCheckpointStore(LocalStore(tmp_path / "store", mkdir=True), JOB_ID, tmp_path / CHECKPOINTS_DIR)
    child = RequestedCheckpointStore(tmp_path, timeout_s=30)
    exited = asyncio.Event()
    service = asyncio.create_task(serve_requests(store, tmp_path, exited))

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
