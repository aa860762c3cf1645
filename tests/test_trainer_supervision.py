"""The trainer service's job supervision against fake Kafka adapters and a trivial child: no broker, no model.

The child (`supervised_child`) speaks `child_protocol` as the real one does (config and identity in, cancel file,
exit codes out), so these tests pin the service's side of the protocol, for a child started afresh and for one forked
from the warm process.
"""

import asyncio
import json
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest
from aiokafka.errors import KafkaConnectionError
from start_keys import DISPATCH_PRIVATE_KEY, TRAINER_IDENTITY_KEY, TRAINER_SEALING_KEY
from trainer_fakes import (
    TRAINER_ID,
    FakeCancelStream,
    FakeJobConsumer,
    FakeProducer,
    FakeRecord,
    local_store,
    put_dataset,
)

from epochscope_runtime.command_signing import signed_cancel, without_job_token
from epochscope_schemas.events import JobInputs, JobStartEvent, JobStatus, ModelSource
from epochscope_schemas.topics import JOB_COMMANDS, dead_letter_topic
from epochscope_trainer.child_protocol import CANCEL_FILE, ChildExit, job_command
from epochscope_trainer.service import main
from epochscope_trainer.service.bootstrap import KafkaAdapters, bootstrap
from epochscope_trainer.service.child_launcher import ChildLauncher, RunningChild, SubprocessLauncher
from epochscope_trainer.service.job_consumer import JobConsumerLoop
from epochscope_trainer.service.warm_launcher import WarmLauncher
from epochscope_trainer.settings import TrainerSettings

CHILD = Path(__file__).with_name("supervised_child.py")  # its behaviour is its job's `model` field


KINDS = ["subprocess", "warm"]  # a child started afresh, or forked from the warm process


@dataclass
class Harness:
    service: JobConsumerLoop
    launcher: ChildLauncher
    jobs: FakeJobConsumer
    cancels: FakeCancelStream
    producer: FakeProducer
    spools: list[Path]
    commands: list[Path]

    async def run(self) -> None:
        """The service's run, then its launcher closed, as `main.serve` does."""
        try:
            await self.service.run()
        finally:
            await self.launcher.close()


class RecordingLauncher:
    """The warm launcher, noting each job folder it starts a child for."""

    def __init__(self, job_dirs: list[Path]) -> None:
        self.warm = WarmLauncher(module=CHILD.stem)
        self.job_dirs = job_dirs

    async def start(self, job_dir: Path, event: JobStartEvent, job_log: BinaryIO) -> RunningChild:
        self.job_dirs.append(job_dir)
        return await self.warm.start(job_dir, event, job_log)

    async def close(self) -> None:
        await self.warm.close()


@pytest.fixture(autouse=True)
def _child_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm process imports the child by module name (it starts with the service's environment)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(CHILD.parent), os.environ.get("PYTHONPATH")])))


STORE, _store = local_store(Path(tempfile.mkdtemp(prefix="epochscope-store-")))
TRAIN = put_dataset(_store, b'{"text": "hi"}\n')


def start_event(mode: str, job_id: uuid.UUID | None = None) -> JobStartEvent:
    return JobStartEvent(
        job_id=job_id or uuid.uuid4(),
        job_token="token-1",
        user_id="user-1",
        trainer_id=TRAINER_ID,
        attempt_id=uuid.uuid4(),
        config={"model": mode, "dataset_id": TRAIN.dataset_id},
        inputs=JobInputs(model=ModelSource(id=mode, source="dir:/models/tiny"), train=TRAIN),
    )


def cancel_of(event: JobStartEvent, token: str = "token-1") -> bytes:
    """A cancel of the job, signed as the API signs it (with the job's token, or `token` for a forgery)."""
    return signed_cancel(event.job_id, "user-1", token).model_dump_json().encode()


def harness(
    tmp_path: Path,
    values: list[bytes],
    command: Callable[[Path], list[str]] | None = None,
    keep: bool = True,
    heartbeat_s: float = 0,
    dispatch_public_keys: str | None = None,
    cancel_grace_s: float = 1.0,
    kind: str = "subprocess",
) -> Harness:
    stopping = asyncio.Event()
    jobs, cancels, producer = FakeJobConsumer(values, stopping), FakeCancelStream(), FakeProducer()
    spools: list[Path] = []
    commands: list[Path] = []

    def child(job_dir: Path) -> list[str]:
        commands.append(job_dir)
        return [sys.executable, str(CHILD), "--job-dir", str(job_dir)]

    async def deliver_spool(job_dir: Path, exited: asyncio.Event) -> None:
        await exited.wait()  # delivery runs beside the child, and ends only once it has exited
        spools.append(job_dir)

    settings = TrainerSettings(
        work_dir=tmp_path,
        cancel_check_s=0.05,
        cancel_grace_s=cancel_grace_s,
        store=STORE,
        keep_job_dirs=keep,
        heartbeat_s=heartbeat_s,
        instance=TRAINER_ID,
        identity_key=None,  # none, even with one in the environment: the trainer id is the bare instance
        dispatch_public_keys=dispatch_public_keys,
        sealing_key=TRAINER_SEALING_KEY,
    )
    adapters = KafkaAdapters(jobs, cancels, producer)
    launcher = RecordingLauncher(commands) if kind == "warm" else SubprocessLauncher(command or child)
    service = bootstrap(settings, stopping, launcher, adapters, deliver_spool=deliver_spool)
    return Harness(service, launcher, jobs, cancels, producer, spools, commands)


async def wait_for_file(path: Path, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not path.exists():
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("kind", KINDS)
async def test_finished_jobs_run_one_at_a_time(tmp_path: Path, kind: str) -> None:
    first, second = start_event("exit:0"), start_event("exit:0")
    h = harness(tmp_path, [first.model_dump_json().encode(), second.model_dump_json().encode()], kind=kind)
    await asyncio.wait_for(h.run(), 30)
    assert h.commands == [tmp_path / str(first.job_id), tmp_path / str(second.job_id)]
    assert h.producer.sent == [] and h.spools == h.commands  # each child's spool delivered, to its exit
    assert h.jobs.polls_while_paused > 0 and h.jobs.paused() == set() and not h.jobs.running
    seen = json.loads((tmp_path / str(first.job_id) / "seen.json").read_text())
    assert seen == {
        "identity": {"JOB_ID": str(first.job_id), "JOB_USER_ID": "user-1", "JOB_TOKEN": "token-1"},
        "dataset": TRAIN.key,
        "model": "dir:/models/tiny",
    }
    inputs = JobInputs.model_validate_json((tmp_path / str(first.job_id) / "inputs.json").read_text())
    assert inputs == first.inputs  # the child reads the start event's inputs, exactly


async def test_the_child_gets_neither_broker_nor_store_credentials_nor_a_service_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service_only = {
        "EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "EPOCHSCOPE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "EPOCHSCOPE_KAFKA_SASL_USERNAME": "epochscope-trainer",
        "EPOCHSCOPE_KAFKA_SASL_PASSWORD": "broker-password-" + "p" * 32,
        "EPOCHSCOPE_TRAINER_IDENTITY_KEY": TRAINER_IDENTITY_KEY,
        "EPOCHSCOPE_TRAINER_SEALING_KEY": TRAINER_SEALING_KEY,
        "EPOCHSCOPE_DISPATCH_PRIVATE_KEY": DISPATCH_PRIVATE_KEY,  # never the trainer's: withheld should it be there
        "EPOCHSCOPE_STORE_ACCESS_KEY_ID": "epochscope-trainer",  # the service stages inputs and uploads checkpoints
        "EPOCHSCOPE_STORE_SECRET_ACCESS_KEY": "store-secret-" + "s" * 32,
        "AWS_SECRET_ACCESS_KEY": "cloud-secret-" + "c" * 32,
    }
    for name, value in {**service_only, "EPOCHSCOPE_KAFKA_MAX_MESSAGE_BYTES": "2097152"}.items():
        monkeypatch.setenv(name, value)
    event = start_event("exit:0")
    dump = "import json, os, sys; open(sys.argv[1] + '/env.json', 'w').write(json.dumps(dict(os.environ)))"
    h = harness(
        tmp_path, [event.model_dump_json().encode()], lambda job_dir: [sys.executable, "-c", dump, str(job_dir)]
    )
    await asyncio.wait_for(h.run(), 30)
    env = json.loads((tmp_path / str(event.job_id) / "env.json").read_text())
    assert not service_only.keys() & env.keys()
    assert not any(value in env.values() for value in service_only.values())
    assert [name for name in env if name.startswith("EPOCHSCOPE_KAFKA_")] == ["EPOCHSCOPE_KAFKA_MAX_MESSAGE_BYTES"]
    assert not [name for name in env if name.startswith(("EPOCHSCOPE_STORE_", "AWS_"))]
    assert (env["JOB_ID"], env["JOB_TOKEN"]) == (str(event.job_id), "token-1")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_crashed_child_is_reported_failed(tmp_path: Path, kind: str) -> None:
    event = start_event("exit:7")
    h = harness(tmp_path, [event.model_dump_json().encode()], kind=kind)
    await asyncio.wait_for(h.run(), 30)
    (status,) = h.producer.statuses()
    assert (status.job_id, status.job_token, status.status) == (event.job_id, "token-1", JobStatus.FAILED)
    assert status.message == "the training process exited with code 7"
    assert h.producer.sent[0][2] == str(event.job_id).encode()


@pytest.mark.parametrize("kind", KINDS)
async def test_undelivered_events_are_handed_to_spool_delivery_and_the_job_is_not_failed(
    tmp_path: Path, kind: str
) -> None:
    event = start_event(f"exit:{int(ChildExit.UNDELIVERED)}")
    h = harness(tmp_path, [event.model_dump_json().encode()], kind=kind)
    await asyncio.wait_for(h.run(), 30)
    assert h.spools == [tmp_path / str(event.job_id)]
    assert h.producer.sent == []


@pytest.mark.parametrize("kind", KINDS)
async def test_a_cancel_reaches_the_running_child_as_the_cancel_file(tmp_path: Path, kind: str) -> None:
    event = start_event("until-cancel")
    # A grace no loaded machine runs out of: the child heeds the file within its check interval, and a grace of 1 s
    # (the other tests') was once spent by a child slow to get scheduled, which was then killed (CI at load 8).
    h = harness(tmp_path, [event.model_dump_json().encode()], cancel_grace_s=30.0, kind=kind)
    running = asyncio.create_task(h.run())
    job_dir = tmp_path / str(event.job_id)
    await wait_for_file(job_dir / "started")
    await h.cancels.queue.put(FakeRecord(cancel_of(event), 0))
    await asyncio.wait_for(running, 30)
    assert (job_dir / CANCEL_FILE).exists()
    assert h.producer.sent == []  # the child reports the cancel itself


@pytest.mark.parametrize("kind", KINDS)
async def test_a_child_that_ignores_a_cancel_is_killed_after_the_grace_and_the_job_reported_cancelled(
    tmp_path: Path, kind: str
) -> None:
    """Whatever the child is stuck in (a long step, a user's validator), a cancel ends the job within seconds."""
    event = start_event("until-sigterm")  # never looks at the cancel file
    h = harness(tmp_path, [event.model_dump_json().encode()], kind=kind)
    running = asyncio.create_task(h.run())
    await wait_for_file(tmp_path / str(event.job_id) / "started")
    cancelled_at = asyncio.get_running_loop().time()
    await h.cancels.queue.put(FakeRecord(cancel_of(event), 0))
    await asyncio.wait_for(running, 30)
    assert asyncio.get_running_loop().time() - cancelled_at < 10
    (status,) = h.producer.statuses()
    assert status.status == JobStatus.CANCELLED
    assert status.message == "cancelled by the user (the training process did not stop within 1s)"


async def test_a_job_cancelled_before_it_starts_never_runs(tmp_path: Path) -> None:
    event = start_event("exit:0")
    h = harness(tmp_path, [event.model_dump_json().encode()])
    h.jobs.wait_for = h.cancels.read_all
    await h.cancels.queue.put(FakeRecord(b"not an event", 0))  # skipped: the group consumer dead-letters it
    await h.cancels.queue.put(FakeRecord(cancel_of(event, token="not-the-job-token"), 1))  # a forgery: no effect
    await h.cancels.queue.put(FakeRecord(cancel_of(event), 2))
    await asyncio.wait_for(h.run(), 30)
    assert h.commands == []
    (status,) = h.producer.statuses()
    assert (status.status, status.message) == (JobStatus.CANCELLED, "cancelled before it started")


async def test_an_invalid_record_is_dead_lettered_with_its_reason(tmp_path: Path) -> None:
    h = harness(tmp_path, [b'{"type": "job.start"}'])
    await asyncio.wait_for(h.run(), 30)
    ((topic, value, _, headers),) = h.producer.sent
    assert (topic, value) == (dead_letter_topic(JOB_COMMANDS), b'{"type": "job.start"}')
    assert headers is not None and headers[0][0] == "reason" and headers[0][1].startswith(b"schema_invalid: ")
    assert h.commands == []


async def test_a_version_1_start_event_is_refused_with_its_reason(tmp_path: Path) -> None:
    v1 = start_event("exit:0").model_dump(mode="json") | {"schema_version": 1}
    v1.pop("inputs")
    v1["config"] = {"model": "m", "dataset_path": "/data/train.jsonl"}  # v1 named a server path
    raw = json.dumps(v1).encode()
    h = harness(tmp_path, [raw])
    await asyncio.wait_for(h.run(), 30)
    ((topic, value, _, headers),) = h.producer.sent
    assert (topic, value) == (dead_letter_topic(JOB_COMMANDS), without_job_token(raw)[0])
    assert value is not None and b"token-1" not in value  # dead letters carry no job token
    reason = b"unsupported_schema_version: job.start v1; this trainer reads v3 (job_token removed from the payload)"
    assert headers == [("reason", reason)]
    assert h.commands == []


@pytest.mark.parametrize("kind", KINDS)
async def test_a_shutdown_mid_job_stops_the_child(tmp_path: Path, kind: str) -> None:
    event = start_event("until-sigterm")
    h = harness(tmp_path, [event.model_dump_json().encode()], kind=kind)
    running = asyncio.create_task(h.run())
    await wait_for_file(tmp_path / str(event.job_id) / "started")
    h.service.stopping.set()
    await asyncio.wait_for(running, 30)
    assert h.producer.sent == []
    assert not h.jobs.running


async def test_a_child_that_cannot_start_is_reported_failed(tmp_path: Path) -> None:
    event = start_event("exit:0")
    h = harness(tmp_path, [event.model_dump_json().encode()], command=lambda _: [str(tmp_path / "no-such-program")])
    await asyncio.wait_for(h.run(), 30)
    (status,) = h.producer.statuses()
    assert status.status == JobStatus.FAILED
    assert status.message is not None and status.message.startswith("cannot start the training process: ")


@pytest.mark.parametrize("processes", [1, 2])
def test_the_child_command_runs_the_job_runner_alone_or_under_torchrun(processes: int) -> None:
    command = job_command(Path("/work/job"), processes)
    assert command[0] == sys.executable
    assert command[-3:] == ["epochscope_trainer.job.runner", "--job-dir", "/work/job"]
    torchrun = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    assert (command[1:5] == torchrun) is (processes > 1)


async def test_serve_restarts_the_service_while_the_broker_is_unreachable_and_not_once_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[asyncio.Event] = []

    class Unreachable:
        def __init__(self, stopping: asyncio.Event, succeed_at: int | None) -> None:
            self.stopping, self.succeed_at = stopping, succeed_at

        async def run(self) -> None:
            attempts.append(self.stopping)
            if len(attempts) == self.succeed_at:
                return
            if self.succeed_at is None:
                self.stopping.set()  # a shutdown while the broker is down: no further attempt
            raise KafkaConnectionError("broker down")

    settings = TrainerSettings(work_dir=tmp_path, store=STORE)
    loop = asyncio.get_running_loop()
    try:
        monkeypatch.setattr(
            main, "bootstrap", lambda _settings, stopping, _launcher: Unreachable(stopping, succeed_at=3)
        )
        await asyncio.wait_for(main.serve(settings), 30)
        assert len(attempts) == 3 and len(set(map(id, attempts))) == 1  # one stop signal across the attempts
        attempts.clear()
        monkeypatch.setattr(
            main, "bootstrap", lambda _settings, stopping, _launcher: Unreachable(stopping, succeed_at=None)
        )
        await asyncio.wait_for(main.serve(settings), 30)
        assert len(attempts) == 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # serve() took them over; give them back
            loop.remove_signal_handler(sig)
