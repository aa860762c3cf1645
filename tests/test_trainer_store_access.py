"""The job's child holds no object-store credentials, on the real broker with a real tiny model: the trainer
service (given store credentials) stages the job's dataset, the running child's /proc/<pid>/environ (and the warm
process's it forks from) and its job folder hold none of them, and the checkpoints the child saved reach the store
under the job's prefix, uploaded by the service. The stack is test_trainer_integration.py's."""

import asyncio
import os
import time
from pathlib import Path

from test_trainer_integration import TrainerStack, long_job, stack, train  # noqa: F401  fixtures
from trainer_fakes import dir_model, start_event

from epochscope_schemas.events import CheckpointEvent, DatasetObject, ProgressEvent
from epochscope_trainer.child_protocol import LOG_FILE

STORE_SECRET = "store-secret-the-job-must-never-hold-0123456789"


def descendants_of(pid: int) -> list[int]:
    """`pid`'s children, their children, and so on."""
    found = children_of(pid)
    return [*found, *(grandchild for child in found for grandchild in descendants_of(child))]


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


async def test_the_running_child_holds_no_store_credentials_and_the_service_uploads_its_checkpoints(
    stack: TrainerStack,  # noqa: F811
    tiny_model_dir: Path,
    train: DatasetObject,  # noqa: F811
) -> None:
    assert stack.env["EPOCHSCOPE_STORE_SECRET_ACCESS_KEY"] == STORE_SECRET  # the service has credentials
    config = long_job(num_epochs=2, predictions={"checkpoints": {"mode": "every_round"}})
    event = start_event(config, train, dir_model(tiny_model_dir))
    await stack.send(event)
    await stack.until(lambda: bool(stack.of(event.job_id, ProgressEvent)), "the job to train")
    assert stack.process is not None
    job_dir = stack.root / "work" / str(event.job_id)
    processes = descendants_of(stack.process.pid)  # the warm process and the job's child forked from it
    job_log = str(job_dir / LOG_FILE)
    assert [pid for pid in processes if os.readlink(f"/proc/{pid}/fd/1") == job_log]  # the job's process among them
    for pid in processes:
        environ = Path(f"/proc/{pid}/environ").read_bytes()  # as the kernel holds it
        assert STORE_SECRET.encode() not in environ and b"EPOCHSCOPE_STORE_" not in environ
    staged = job_dir / "inputs" / "train.jsonl"
    assert staged.read_bytes() == (stack.root / "store" / train.key).read_bytes()  # staged by the service
    assert not [p for p in job_dir.rglob("*") if p.is_file() and STORE_SECRET.encode() in p.read_bytes()]

    final = await stack.finished(event.job_id)
    assert final.status == "completed", final.message
    checkpoints = stack.of(event.job_id, CheckpointEvent)
    assert checkpoints and {c.key for c in checkpoints} >= {f"jobs/{event.job_id}/checkpoints/final"}
    for checkpoint in checkpoints:
        for file in checkpoint.files:
            uploaded = stack.root / "store" / checkpoint.key / file.name
            assert uploaded.stat().st_size == file.bytes, uploaded
    deadline = time.monotonic() + 30
    while job_dir.exists() and time.monotonic() < deadline:  # the job folder goes, with its staged inputs
        await asyncio.sleep(0.2)
    assert not job_dir.exists() and os.path.isdir(stack.root / "store" / "jobs" / str(event.job_id))
