"""Each job's child forked from a warm process that imported the job runner once (`job.warm_process`), so a job
pays a fork (milliseconds) instead of importing torch, transformers, TRL and peft (~5 CPU-seconds, 5-7 s here).

The warm process starts at the first job (a trainer that never runs one never pays for it), with a child's
environment and no identity; each job's identity goes to its child alone, in a 0600 file the child takes. The
trainer signals a child through its pidfd and learns its exit code from the warm process, which reaps it. A warm
process found dead is started again at the next job; a job whose warm process dies under it ends once its child
has (it gets SIGTERM then), its exit code unknown (`ChildLost`).
"""

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import BinaryIO

from epochscope_schemas.events import JobStartEvent
from epochscope_trainer.child_protocol import IDENTITY_FILE, WARM_READY, worker_env, write_identity
from epochscope_trainer.process_control import stop_with_parent
from epochscope_trainer.service.child_launcher import ChildLost, RunningChild

log = logging.getLogger("epochscope.trainer")

JOB_RUNNER = "epochscope_trainer.job.runner"
FORK_REPLY_TIMEOUT_S = 60.0  # a fork takes milliseconds; a warm process this slow to answer is replaced
CLOSE_TIMEOUT_S = 10.0


class WarmLauncher:
    """Starts one-process jobs' children as forks of a warm process that imported `module` (the job runner)."""

    def __init__(self, module: str = JOB_RUNNER) -> None:
        self.module = module
        self._process: asyncio.subprocess.Process | None = None
        self._control: socket.socket | None = None
        self._lock = asyncio.Lock()

    async def start(self, job_dir: Path, event: JobStartEvent, job_log: BinaryIO) -> RunningChild:
        write_identity(job_dir, event)
        try:
            async with self._lock:
                return await self._fork(job_dir, job_log)
        except BaseException:  # not started: an error, or a shutdown meanwhile
            (job_dir / IDENTITY_FILE).unlink(missing_ok=True)
            raise

    async def close(self) -> None:
        """The warm process exits once its socket is closed (a child left would get SIGTERM)."""
        process, self._process = self._process, None
        if self._control is not None:
            self._control.close()
            self._control = None
        if process is not None and process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def _fork(self, job_dir: Path, job_log: BinaryIO) -> "WarmChild":
        control = await self._warm()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        try:
            with theirs:
                request = json.dumps({"job_dir": str(job_dir)}).encode()
                socket.send_fds(control, [request], [theirs.fileno(), job_log.fileno()])
            async with asyncio.timeout(FORK_REPLY_TIMEOUT_S):
                message, fds = await _receive(ours, fds_max=1)
            if not message or len(fds) != 1:
                raise OSError("the warm process exited before it started the job")
        except (OSError, TimeoutError) as exc:
            ours.close()
            await self.close()  # a new one at the next job
            raise OSError(f"the warm process did not start the job: {exc or 'no answer'}") from exc
        except asyncio.CancelledError:  # a shutdown: a child forked meanwhile gets SIGTERM with the warm process
            ours.close()
            await self.close()
            raise
        return WarmChild(int(message), fds[0], ours, job_dir)

    async def _warm(self) -> socket.socket:
        """The warm process's socket, the process started (and its imports done) first if it is not running."""
        if self._control is not None and self._process is not None and self._process.returncode is None:
            return self._control
        await self.close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        with theirs:
            command = ["-m", "epochscope_trainer.job.warm_process", "--control-fd", str(theirs.fileno()), self.module]
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *command,
                env=worker_env(),
                pass_fds=(theirs.fileno(),),
                preexec_fn=stop_with_parent,  # in this, the event loop's thread, which lives as long as the trainer
            )
        log.info("warm process %s started: importing %s", process.pid, self.module)
        try:
            message, _ = await _receive(ours, fds_max=0)
        except asyncio.CancelledError:  # a shutdown during the imports
            process.kill()
            await process.wait()
            ours.close()
            raise
        if message != WARM_READY:
            ours.close()
            raise OSError(f"the warm process exited with {await process.wait()} before it was ready")
        self._process, self._control = process, ours
        return ours


class WarmChild:
    """A job's child forked from the warm process: signalled by pidfd, its exit code as the warm process reaped it."""

    def __init__(self, pid: int, pidfd: int, channel: socket.socket, job_dir: Path) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self._channel = channel
        self._job_dir = job_dir
        self._exit = asyncio.get_running_loop().create_task(self._exit_code())

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    def send_signal(self, signum: int) -> None:
        if self._exit.done():  # its pidfd is closed
            return
        with contextlib.suppress(ProcessLookupError):  # exited, not reaped yet
            signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    async def _exit_code(self) -> int:
        try:
            message, _ = await _receive(self._channel, fds_max=0)
            if not message:  # the warm process died; the child got SIGTERM with it
                await _readable(self._pidfd)
                raise ChildLost("the warm process that started the training process died")
            return int(message)
        finally:
            self._channel.close()
            os.close(self._pidfd)
            (self._job_dir / IDENTITY_FILE).unlink(missing_ok=True)  # a child that died before it took its identity


async def _receive(sock: socket.socket, fds_max: int) -> tuple[bytes, list[int]]:
    """One message from a non-blocking SOCK_SEQPACKET socket, with the descriptors passed along; b"" at its end."""
    while True:
        try:
            message, fds, _flags, _address = socket.recv_fds(sock, 4096, fds_max)
            return message, fds
        except BlockingIOError:
            await _readable(sock.fileno())
        except ConnectionResetError:
            return b"", []


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)
