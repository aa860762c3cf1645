"""How the supervisor starts a job's child: the port, and the plain-subprocess adapter (`warm_launcher` is the
other: a fork of a warm process that imported the job runner once)."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from epochscope_schemas.events import JobStartEvent
from epochscope_trainer.child_protocol import child_env
from epochscope_trainer.process_control import stop_with_parent


class ChildLost(Exception):
    """The child's exit code is unknown: the process that started it died, and the child with it."""


class RunningChild(Protocol):
    """A started child, as `asyncio.subprocess.Process` is one."""

    async def wait(self) -> int:
        """Its exit code (negative: the signal that ended it), once it has exited; `ChildLost` if unknown."""
        ...

    def send_signal(self, signum: int) -> None: ...

    def kill(self) -> None: ...


class ChildLauncher(Protocol):
    async def start(self, job_dir: Path, event: JobStartEvent, job_log: BinaryIO) -> RunningChild:
        """The job's child, running, its stdout and stderr `job_log`; OSError when it cannot start."""
        ...

    async def close(self) -> None:
        """Release what the launcher holds (no child of it is running by then)."""
        ...


class SubprocessLauncher:
    """Each child a fresh process running `command(job_dir)` with the job's identity in its environment: a torchrun
    job's ranks, or another command. It gets SIGTERM (a shutdown) when the trainer dies."""

    def __init__(self, command: Callable[[Path], list[str]]) -> None:
        self.command = command

    async def start(self, job_dir: Path, event: JobStartEvent, job_log: BinaryIO) -> RunningChild:
        return await asyncio.create_subprocess_exec(
            *self.command(job_dir),
            env=child_env(event),
            stdout=job_log,
            stderr=job_log,
            preexec_fn=stop_with_parent,
        )

    async def close(self) -> None:
        """Nothing is held between jobs."""
