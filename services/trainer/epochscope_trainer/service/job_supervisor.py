"""Running one job's child process to its end, and reporting what the child could not."""

import asyncio
import contextlib
import logging
import shutil
import signal
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import BinaryIO

from epochscope_runtime.object_store import ObjectStore
from epochscope_schemas.events import JobStartEvent, JobStatus
from epochscope_trainer.checkpoint_store import CHECKPOINTS_DIR, REQUESTS_DIR, DirectCheckpointStore, serve_requests
from epochscope_trainer.child_protocol import (
    INPUTS_DIR,
    LOG_FILE,
    ChildExit,
    has_spool,
    prepare_job_dir,
    request_cancel,
)
from epochscope_trainer.input_staging import stage_inputs
from epochscope_trainer.service.child_launcher import ChildLauncher, ChildLost, RunningChild
from epochscope_trainer.service.status_publisher import StatusPublisher

log = logging.getLogger("epochscope.trainer")

LOG_TAIL_BYTES = 4096  # of a crashed child's log, copied into the service's log before its folder goes


class JobSupervisor:
    """Stages a job's datasets, starts its child, uploads the checkpoints the child asks it to, passes on a cancel
    (a file in the job folder, saying why: the user cancelled the job, or the dispatcher fenced this attempt of it)
    or a shutdown (SIGTERM),
    delivers the events it left undelivered, and reports a crash as a failed job.

    A child that has not stopped `cancel_grace_s` after a cancel (stuck in a step, in generation, in a user's
    validator) is killed, and the job reported cancelled here: a cancel always ends a job within seconds.

    A job done with (ended, cancelled, or deleted, which cancels it) has its folder removed, with its inputs and
    log, unless `keep_job_dirs`; a folder is kept while it holds undelivered events, or for a job to be re-run.

    Args:
        work_dir: one folder per job is made under it.
        check_s: how often a running child is checked for a cancel or a shutdown.
        cancel_grace_s: how long a cancelled child may take to stop by itself before it is killed.
        launcher: starts a job's child (`child_launcher`).
        stop_reason: why a job's attempt is to stop, or None (the cancel watcher's).
        stopping: set when the service shuts down.
        status: publishes the service's own status events.
        deliver_spool: delivers a job folder's spool file while its child runs and once it has exited (the event).
        keep_job_dirs: keep each job's folder after the job, for debugging.
        store: the object store, with the service's credentials (the child holds none).
    """

    def __init__(
        self,
        work_dir: Path,
        check_s: float,
        launcher: ChildLauncher,
        stop_reason: Callable[[JobStartEvent], str | None],
        stopping: asyncio.Event,
        status: StatusPublisher,
        deliver_spool: Callable[[Path, asyncio.Event], Awaitable[None]],
        store: ObjectStore,
        cancel_grace_s: float = 5.0,
        keep_job_dirs: bool = False,
    ) -> None:
        self.store = store
        self.work_dir = work_dir
        self.check_s = check_s
        self.cancel_grace_s = cancel_grace_s
        self.launcher = launcher
        self.stop_reason = stop_reason
        self.stopping = stopping
        self.status = status
        self.deliver_spool = deliver_spool
        self.keep_job_dirs = keep_job_dirs

    async def run(self, event: JobStartEvent) -> bool:
        """Run the job; False when a shutdown interrupted it (it is to be re-run), True when it is done with."""
        job_dir = prepare_job_dir(self.work_dir, event)
        await asyncio.to_thread(stage_inputs, self.store, event.inputs, job_dir / INPUTS_DIR)
        done = await self._run_child(event, job_dir)
        if done and not self.keep_job_dirs:
            await asyncio.to_thread(_remove_job_dir, job_dir)
        return done

    async def _run_child(self, event: JobStartEvent, job_dir: Path) -> bool:
        job_id = str(event.job_id)
        log.info("starting job %s", job_id, extra={"job_id": job_id})
        exited = asyncio.Event()
        delivery = asyncio.create_task(self.deliver_spool(job_dir, exited))
        shutil.rmtree(job_dir / REQUESTS_DIR, ignore_errors=True)  # an earlier attempt's, in a folder kept for it
        checkpoints = DirectCheckpointStore(
            self.store, event.job_id, job_dir / CHECKPOINTS_DIR, event.inputs.checkpoint_bytes_max
        )
        uploads = asyncio.create_task(serve_requests(checkpoints, job_dir, exited, partial(self.status.warn, event)))
        try:
            code, killed_for = await self._start_and_wait(event, job_dir)
        finally:
            exited.set()
            await uploads
            await delivery  # the child's events out (or kept on disk at a shutdown) before the service's own
        if code is None:  # it never started, or was lost (reported)
            return True
        log.info("job %s exited with %s", job_id, code, extra={"job_id": job_id, "exit_code": code})
        if killed_for:
            message = f"{killed_for} (the training process did not stop within {self.cancel_grace_s:g}s)"
            await self.status.publish(event, JobStatus.CANCELLED, message)
            return True
        if self.stopping.is_set() and code != ChildExit.FINISHED:
            return False
        if code == ChildExit.EVENTS_LOST:
            message = "the training process could not spool all its events (is the trainer's disk full?)"
            await self.status.publish(event, JobStatus.FAILED, message)
        elif code not in (ChildExit.FINISHED, ChildExit.UNDELIVERED):
            log.warning("job %s crashed; the end of its log:\n%s", job_id, _log_tail(job_dir), extra={"job_id": job_id})
            await self.status.publish(event, JobStatus.FAILED, f"the training process exited with code {code}")
        return True

    async def _start_and_wait(self, event: JobStartEvent, job_dir: Path) -> tuple[int | None, str | None]:
        """The child's exit code (None: it could not start, or was lost; reported here) and why it was killed, if
        it was."""
        with open(job_dir / LOG_FILE, "ab") as job_log:
            try:
                child = await self._start(event, job_dir, job_log)
            except OSError as exc:
                await self.status.publish(event, JobStatus.FAILED, f"cannot start the training process: {exc}")
                return None, None
        if child is None:
            return ChildExit.INTERRUPTED, None
        try:
            return await self._wait(child, job_dir, event)
        except ChildLost as exc:
            job_id = str(event.job_id)
            tail = _log_tail(job_dir)
            log.warning("job %s lost: %s; the end of its log:\n%s", job_id, exc, tail, extra={"job_id": job_id})
            await self.status.publish(event, JobStatus.FAILED, f"the training process was lost: {exc}")
            return None, None

    async def _start(self, event: JobStartEvent, job_dir: Path, job_log: BinaryIO) -> RunningChild | None:
        """The started child, or None when a shutdown came first (the warm process's imports take seconds)."""
        starting = asyncio.ensure_future(self.launcher.start(job_dir, event, job_log))
        stopped = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if starting.done():
            return starting.result()
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        return None

    async def _wait(self, child: RunningChild, job_dir: Path, event: JobStartEvent) -> tuple[int, str | None]:
        """The child's exit code, and the cancel's reason if it was killed for not heeding it. Meanwhile a shutdown
        becomes SIGTERM and a cancel the cancel file, once each; a cancel still unheeded after the grace, SIGKILL."""
        job_id = str(event.job_id)
        stop_sent = False
        cancel_deadline: float | None = None
        reason: str | None = None
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await asyncio.wait_for(child.wait(), timeout=self.check_s), None
            except TimeoutError:
                pass
            if self.stopping.is_set() and not stop_sent:
                child.send_signal(signal.SIGTERM)
                stop_sent = True
            elif cancel_deadline is None and (reason := self.stop_reason(event)) is not None:
                log.info("cancelling job %s attempt %s: %s", job_id, event.attempt_id, reason)
                request_cancel(job_dir, reason)
                cancel_deadline = loop.time() + self.cancel_grace_s
            elif cancel_deadline is not None and loop.time() >= cancel_deadline:
                log.warning("job %s did not stop within %.0fs of its cancel; killing it", job_id, self.cancel_grace_s)
                child.kill()
                return await child.wait(), reason


def _remove_job_dir(job_dir: Path) -> None:
    """Remove a finished job's folder, unless events still wait in its spool (they are delivered first)."""
    if has_spool(job_dir):
        log.warning("keeping %s: undelivered events are left in its spool", job_dir)
        return
    shutil.rmtree(job_dir, ignore_errors=True)


def _log_tail(job_dir: Path, size: int = LOG_TAIL_BYTES) -> str:
    """The last `size` bytes of the child's log, which goes with its folder."""
    try:
        with open(job_dir / LOG_FILE, "rb") as job_log:
            job_log.seek(max(job_log.seek(0, 2) - size, 0))
            return job_log.read().decode("utf-8", "replace")
    except OSError:
        return ""
