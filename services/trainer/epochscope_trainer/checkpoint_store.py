"""Where a job's checkpoint files go: the trainer service uploads them; the job's child process only asks.

The child holds no object-store credentials (`child_protocol.child_env`). It saves a checkpoint's files in its job
folder, under `checkpoints/<name>/`, and asks the service to upload them (or to delete an uploaded checkpoint's files)
with a request file; the service checks the checkpoint's name and each file's name, builds every key itself from the
job id it started the child for (`jobs/<job_id>/checkpoints/<name>/<file>`), does the work with its own credentials,
and answers. The child never names an object key or a path: it can reach nothing but its job's checkpoints, and it
cannot have the service upload a file from outside its checkpoint's folder (no links are followed).

The service also holds the job to its checkpoint byte allowance (the signed start's `checkpoint_bytes_max`), which the
child's checkpointer counts too: it keeps its own tally of the bytes it has put and deleted for the job, and refuses
a put that would take them past the allowance before uploading anything (a `checkpoint_quota` warning event naming the
limit; the job goes on). Each file is read to the size counted, no further, and a put that fails halfway has the
files it put removed: nothing partial is kept.
"""

import asyncio
import contextlib
import json
import os
import re
import stat
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import obstore

from epochscope_runtime.object_store import ObjectStore

CHECKPOINTS_DIR = "checkpoints"  # in the job folder: one folder per checkpoint, its files saved there by the child
REQUESTS_DIR = "store-requests"  # in the job folder: the child's requests (<n>.json) and the answers (.done, .failed)
CHECKPOINT_NAME = re.compile(r"^(round-[0-9]{1,9}|final)$")
FILE_NAME = re.compile(r"^(?!\.\.?$)[^/\\\x00]{1,255}$")  # a plain name: no separator, not `.` or `..`
ANSWER_TIMEOUT_S = 3600.0  # a request the service has not answered by then fails (the checkpoint is a warning)
POLL_S = 0.05
REQUEST_MAX_BYTES = 256 << 10  # a request names a checkpoint and its files' names, no more
UPLOAD_CHUNK_BYTES = 8 << 20
QUOTA_WARNING = "checkpoint_quota"  # the warning's code, the child's checkpointer's too


def checkpoint_prefix(job_id: Any, name: str) -> str:
    """Where a checkpoint's files live: under the job's own prefix, which the API deletes with the job."""
    return f"jobs/{job_id}/checkpoints/{name}"


class CheckpointStore(Protocol):
    """Puts the files of one checkpoint (saved under `<checkpoints folder>/<name>/`) and deletes them, by name."""

    def put(self, name: str, files: list[str]) -> None: ...

    def delete(self, name: str, files: list[str]) -> None: ...


def validated(name: Any, files: Any) -> tuple[str, list[str]]:
    """The checkpoint's name and file names, when they are ones a job may use; ValueError otherwise."""
    if not isinstance(name, str) or not CHECKPOINT_NAME.match(name):
        raise ValueError(f"not a checkpoint name: {str(name)[:80]!r}")
    if not isinstance(files, list) or not files or len(files) > 1000:
        raise ValueError("a checkpoint request names 1 to 1000 files")
    if not all(isinstance(file, str) and FILE_NAME.match(file) for file in files):
        raise ValueError("a checkpoint file's name is a plain name (no separator, not . or ..)")
    return name, files


def within_allowance(allowance: int | None, kept_bytes: int, new_bytes: int) -> bool:
    """Whether a new checkpoint of `new_bytes` fits beside the `kept_bytes` that stay (None: no limit)."""
    return allowance is None or kept_bytes + new_bytes <= allowance


class OverAllowance(ValueError):
    """A checkpoint the service refuses to upload: it would take the job's checkpoints past their byte allowance."""


class CheckpointBytes:
    """The bytes of one job's checkpoint files in the store, as the service put and deleted them, against the job's
    byte allowance (None: no limit)."""

    def __init__(self, allowance: int | None) -> None:
        self.allowance = allowance
        self._stored: dict[tuple[str, str], int] = {}  # (checkpoint, file) -> bytes

    def refusal(self, name: str, sizes: dict[str, int]) -> str | None:
        """Why putting checkpoint `name`'s files (`sizes`, by file) would take the job past its allowance, or None.
        A file put again replaces its earlier bytes."""
        kept = sum(size for (checkpoint, file), size in self._stored.items() if checkpoint != name or file not in sizes)
        new = sum(sizes.values())
        if within_allowance(self.allowance, kept, new):
            return None
        return (
            f"checkpoint {name} not uploaded by the trainer service: its {new} bytes would take this job's checkpoints"
            f" to {kept + new} bytes, over the job's allowance of {self.allowance} bytes (what was left of the owner's"
            " checkpoint quota when the job was submitted)"
        )

    def put(self, name: str, file: str, size: int) -> None:
        self._stored[(name, file)] = size

    def delete(self, name: str, files: list[str]) -> None:
        for file in files:
            self._stored.pop((name, file), None)


class DirectCheckpointStore:
    """The service's: uploads and deletes with the store's credentials, every key built from the job id, within the
    job's byte allowance (`byte_allowance`, None: no limit)."""

    def __init__(
        self, store: ObjectStore, job_id: uuid.UUID, checkpoints_dir: Path, byte_allowance: int | None = None
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.checkpoints_dir = checkpoints_dir
        self.stored = CheckpointBytes(byte_allowance)

    def put(self, name: str, files: list[str]) -> None:
        """Upload the checkpoint's files, or none of them: OverAllowance past the job's allowance, ValueError or
        OSError for a name or file it may not upload, or the store's error (what it had put is removed first)."""
        name, files = validated(name, files)
        folder = self.checkpoints_dir / name
        if folder.is_symlink() or folder.resolve() != self.checkpoints_dir.resolve() / name:
            raise ValueError(f"checkpoint {name}: its folder is a link")
        handles: dict[str, BinaryIO] = {}
        try:
            for file in dict.fromkeys(files):
                # A link to elsewhere is refused; a FIFO opens without waiting for a writer, and is refused below.
                descriptor = os.open(folder / file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                handles[file] = os.fdopen(descriptor, "rb")
            sizes = {file: _regular_file_size(file, handle) for file, handle in handles.items()}
            if refusal := self.stored.refusal(name, sizes):
                raise OverAllowance(refusal)
            self._upload(name, handles, sizes)
        finally:
            for handle in handles.values():
                handle.close()

    def _upload(self, name: str, handles: dict[str, BinaryIO], sizes: dict[str, int]) -> None:
        prefix = checkpoint_prefix(self.job_id, name)
        done: list[str] = []
        try:
            for file, handle in handles.items():
                obstore.put(self.store, f"{prefix}/{file}", _chunks(handle, sizes[file]))
                done.append(file)
                self.stored.put(name, file, sizes[file])
        except Exception:
            with contextlib.suppress(Exception):  # the store's error is the one to report
                if done:  # a put is whole or absent: the files put before the one it failed on
                    self.delete(name, done)
            raise

    def delete(self, name: str, files: list[str]) -> None:
        name, files = validated(name, files)
        prefix = checkpoint_prefix(self.job_id, name)
        obstore.delete(self.store, [f"{prefix}/{file}" for file in files])
        self.stored.delete(name, files)


def _regular_file_size(file: str, handle: BinaryIO) -> int:
    status = os.fstat(handle.fileno())
    if not stat.S_ISREG(status.st_mode):
        raise ValueError(f"checkpoint file {file!r} is not a regular file")
    return status.st_size


def _chunks(handle: BinaryIO, size: int) -> Iterator[bytes]:
    """The file's first `size` bytes (its size when counted against the allowance), however it grows meanwhile."""
    left = size
    while left > 0:
        chunk = handle.read(min(UPLOAD_CHUNK_BYTES, left))
        if not chunk:
            raise ValueError("a checkpoint file shrank while it was uploaded")
        left -= len(chunk)
        yield chunk


class RequestedCheckpointStore:
    """The child's: each put or delete is a request file the service answers; it waits for the answer and raises
    the service's refusal or failure (RuntimeError), or TimeoutError."""

    def __init__(self, job_dir: Path, timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        self.requests = job_dir / REQUESTS_DIR
        self.timeout_s = timeout_s

    def put(self, name: str, files: list[str]) -> None:
        self._ask({"op": "put", "checkpoint": name, "files": files})

    def delete(self, name: str, files: list[str]) -> None:
        self._ask({"op": "delete", "checkpoint": name, "files": files})

    def _ask(self, request: dict[str, Any]) -> None:
        self.requests.mkdir(parents=True, exist_ok=True)
        stem = uuid.uuid4().hex  # one request at a time; never an answer left from an earlier run of the job
        partial = self.requests / f".{stem}.partial"
        partial.write_text(json.dumps(request))
        partial.rename(self.requests / f"{stem}.json")  # the service never reads half a request
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if (self.requests / f"{stem}.done").exists():
                return
            failed = self.requests / f"{stem}.failed"
            if failed.exists():
                raise RuntimeError(f"the trainer service refused or failed it: {failed.read_text()[:1000]}")
            time.sleep(POLL_S)
        raise TimeoutError(f"the trainer service did not answer within {self.timeout_s:g}s")


Warn = Callable[[str, str], Awaitable[None]]  # publishes a warning event of the job: (code, message)


async def serve_requests(store: DirectCheckpointStore, job_dir: Path, exited: asyncio.Event, warn: Warn) -> None:
    """In the service: answer the child's requests (one at a time: the child waits for each answer) until it has
    exited; a put refused for the job's allowance is also a warning event of the job's (`warn`)."""
    folder = job_dir / REQUESTS_DIR
    answered: set[str] = set()
    while True:
        done = exited.is_set()  # read before the folder: a last request made before the exit is still answered
        for request in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if request.name not in answered and not _answered(request):  # never twice, not an earlier run's
                answered.add(request.name)
                await _answer(store, request, warn)
        if done:
            return
        await asyncio.sleep(POLL_S * 2)


def _answered(request: Path) -> bool:
    return request.with_suffix(".done").exists() or request.with_suffix(".failed").exists()


async def _answer(store: DirectCheckpointStore, request: Path, warn: Warn) -> None:
    try:
        if request.stat().st_size > REQUEST_MAX_BYTES:
            raise ValueError(f"a request is at most {REQUEST_MAX_BYTES} bytes")
        asked = json.loads(request.read_text())
        operation = {"put": store.put, "delete": store.delete}[asked["op"]]
        try:
            await asyncio.to_thread(operation, asked["checkpoint"], asked["files"])
        except OverAllowance as exc:
            await warn(QUOTA_WARNING, str(exc))  # the service's own word: the job's process may not be honest
            raise
    except Exception as exc:  # noqa: BLE001  a bad request or a store failure: the child reports it as a warning
        with contextlib.suppress(OSError):
            request.with_suffix(".failed").write_text(f"{type(exc).__name__}: {exc}"[:1000])
        return
    with contextlib.suppress(OSError):
        request.with_suffix(".done").touch()
