"""The warm launcher (`service/warm_launcher.py`, `job/warm_process.py`) on its own: a job's child forked from the
warm process, signalled by pidfd, its exit code as the warm process reaped it, the warm process's death noticed, and
the job's identity held by that job's child alone. The child is `supervised_child` (no model)."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from test_trainer_supervision import CHILD, TRAINER_IDENTITY_KEY, RecordingLauncher, harness, start_event, wait_for_file

from epochscope_schemas.events import JobStartEvent, JobStatus
from epochscope_trainer.child_protocol import IDENTITY_FILE, LOG_FILE, ChildExit, prepare_job_dir
from epochscope_trainer.service.child_launcher import ChildLost
from epochscope_trainer.service.warm_launcher import WarmChild, WarmLauncher


@pytest.fixture(autouse=True)
def _child_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(CHILD.parent), os.environ.get("PYTHONPATH")])))


@pytest.fixture
async def launcher() -> AsyncIterator[WarmLauncher]:
    warm = WarmLauncher(module=CHILD.stem)
    yield warm
    await warm.close()


def with_token(mode: str) -> JobStartEvent:
    return start_event(mode).model_copy(update={"job_token": f"job-token-{uuid.uuid4().hex}"})


async def started(launcher: WarmLauncher, work_dir: Path, event: JobStartEvent) -> tuple[WarmChild, Path]:
    job_dir = prepare_job_dir(work_dir, event)
    with open(job_dir / LOG_FILE, "ab") as job_log:
        child = await launcher.start(job_dir, event, job_log)
    assert isinstance(child, WarmChild)
    return child, job_dir


def warm_pid(launcher: WarmLauncher) -> int:
    assert launcher._process is not None  # noqa: SLF001  the process the test inspects or kills
    return launcher._process.pid  # noqa: SLF001


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def warm_processes() -> list[int]:
    """This process's children that are warm processes."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rpartition(")")[2].split()[1]) == os.getpid():
                found += [int(stat.parent.name)] if b"warm_process" in (stat.parent / "cmdline").read_bytes() else []
        except (OSError, IndexError):
            continue
    return found


def memory_of(pid: int) -> Iterator[bytes]:
    """Every readable region of a process's memory (root reads any process's, undumpable or not)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            match = re.match(r"([0-9a-f]+)-([0-9a-f]+) r", line)
            if match is None or "[vvar" in line or "[vsyscall" in line:
                continue
            start, end = int(match[1], 16), int(match[2], 16)
            try:
                mem.seek(start)
                yield mem.read(end - start)
            except OSError:
                continue


async def test_exit_codes_come_back_as_the_warm_process_reaped_them(launcher: WarmLauncher, tmp_path: Path) -> None:
    child, _ = await started(launcher, tmp_path, with_token("exit:7"))
    assert await asyncio.wait_for(child.wait(), 30) == 7
    child, job_dir = await started(launcher, tmp_path, with_token("until-sigterm"))
    await wait_for_file(job_dir / "started")
    child.send_signal(signal.SIGTERM)  # through its pidfd
    assert await asyncio.wait_for(child.wait(), 30) == ChildExit.INTERRUPTED
    child, job_dir = await started(launcher, tmp_path, with_token("until-sigterm"))
    await wait_for_file(job_dir / "started")
    child.kill()
    assert await asyncio.wait_for(child.wait(), 30) == -signal.SIGKILL
    child.kill()  # once it has exited: a no-op (its pidfd is closed), never a signal to a reused pid


async def test_the_identity_reaches_only_the_jobs_child(launcher: WarmLauncher, tmp_path: Path) -> None:
    """Each child sees its own job's identity and no service key; the warm process never holds a token, so a later
    job's child, forked from it, cannot inherit an earlier job's."""
    first, second = with_token("dump-env"), with_token("dump-env")
    tokens = [event.job_token.encode() for event in (first, second) if event.job_token]
    for event in (first, second):
        child, job_dir = await started(launcher, tmp_path, event)
        assert await asyncio.wait_for(child.wait(), 30) == ChildExit.FINISHED
        env = json.loads((job_dir / "env.json").read_text())
        assert (env["JOB_ID"], env["JOB_TOKEN"]) == (str(event.job_id), event.job_token)
        assert not (job_dir / IDENTITY_FILE).exists()  # the child took it
        assert {(other.job_token or "") for other in (first, second) if other is not event}.isdisjoint(env.values())
    pid = warm_pid(launcher)
    assert not any(token in Path(f"/proc/{pid}/environ").read_bytes() for token in tokens)
    if os.geteuid() != 0:
        pytest.skip("reading another process's memory needs root (the warm process is not dumpable)")
    assert not any(token in region for region in memory_of(pid) for token in tokens)


async def test_the_warm_process_gets_no_service_key(
    launcher: WarmLauncher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EPOCHSCOPE_TRAINER_IDENTITY_KEY", TRAINER_IDENTITY_KEY)
    monkeypatch.setenv("EPOCHSCOPE_KAFKA_SASL_PASSWORD", "broker-password")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the operator's choice, in the warm process before any import
    child, _ = await started(launcher, tmp_path, with_token("exit:0"))
    await asyncio.wait_for(child.wait(), 30)
    environ = Path(f"/proc/{warm_pid(launcher)}/environ").read_bytes().split(b"\0")
    assert not [item for item in environ if item.startswith((b"EPOCHSCOPE_TRAINER_", b"EPOCHSCOPE_KAFKA_SASL"))]
    assert b"OMP_WAIT_POLICY=ACTIVE" in environ


async def test_a_dead_warm_process_is_noticed_and_replaced(launcher: WarmLauncher, tmp_path: Path) -> None:
    child, job_dir = await started(launcher, tmp_path, with_token("until-sigterm"))
    await wait_for_file(job_dir / "started")
    first = warm_pid(launcher)
    os.kill(first, signal.SIGKILL)
    with pytest.raises(ChildLost):  # not a hang: the child got SIGTERM with its warm process, and exited
        await asyncio.wait_for(child.wait(), 30)
    child, _ = await started(launcher, tmp_path, with_token("exit:3"))
    assert await asyncio.wait_for(child.wait(), 30) == 3
    assert warm_pid(launcher) != first


async def test_the_warm_process_starts_at_the_first_job_and_stops_when_closed(tmp_path: Path) -> None:
    warm = WarmLauncher(module=CHILD.stem)
    assert warm._process is None  # noqa: SLF001  a trainer that runs no job pays no imports
    await warm.close()
    child, _ = await started(warm, tmp_path, with_token("exit:0"))
    await asyncio.wait_for(child.wait(), 30)
    pid = warm_pid(warm)
    await warm.close()
    assert not alive(pid)


async def test_a_shutdown_while_the_warm_process_imports_stops_the_trainer_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first job waits on the warm process's imports (seconds): a shutdown meanwhile does not."""
    monkeypatch.setenv("SUPERVISED_CHILD_IMPORT_S", "60")
    event = with_token("exit:0")
    h = harness(tmp_path, [event.model_dump_json().encode()], kind="warm")
    running = asyncio.create_task(h.run())
    assert isinstance(h.launcher, RecordingLauncher)
    async with asyncio.timeout(30):
        while h.launcher.job_dirs == []:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the warm process is importing
    h.service.stopping.set()
    await asyncio.wait_for(running, 10)
    assert h.producer.sent == []  # no final status: the job is to be re-run
    assert not (h.launcher.job_dirs[0] / IDENTITY_FILE).exists()
    assert warm_processes() == []  # stopped, not left importing


async def test_a_job_lost_with_its_warm_process_is_reported_failed(tmp_path: Path) -> None:
    event = with_token("until-sigterm")
    h = harness(tmp_path, [event.model_dump_json().encode()], kind="warm")
    running = asyncio.create_task(h.run())
    await wait_for_file(tmp_path / str(event.job_id) / "started")
    assert isinstance(h.launcher, RecordingLauncher)
    os.kill(warm_pid(h.launcher.warm), signal.SIGKILL)
    await asyncio.wait_for(running, 30)
    (status,) = h.producer.statuses()
    assert (status.job_id, status.status) == (event.job_id, JobStatus.FAILED)
    assert status.message == "the training process was lost: the warm process that started the training process died"


TRAINER = """
import asyncio, sys
from pathlib import Path
from test_trainer_warm_launcher import started, with_token, warm_pid
from epochscope_trainer.service.warm_launcher import WarmLauncher

async def main():
    warm = WarmLauncher(module="supervised_child")
    child, _ = await started(warm, Path(sys.argv[1]), with_token("until-sigterm"))
    print(warm_pid(warm), child.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_a_dead_trainer_stops_the_warm_process_and_the_job(tmp_path: Path) -> None:
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert trainer.stdout is not None
        warm, child = map(int, trainer.stdout.readline().split())
        trainer.kill()
        deadline = time.monotonic() + 30
        while (alive(warm) or alive(child)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(warm) and not alive(child)
    finally:
        trainer.kill()
        trainer.wait()
