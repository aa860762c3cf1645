"""The contract between the trainer service and a job's child process; both sides import it.

The service writes the job's config and inputs (object keys, model source) into the job folder, stages the
datasets there, starts the child with the job's identity in its environment (a child forked from the warm process
takes it from a file), uploads the checkpoints the child asks it to (`checkpoint_store`: the child holds no store
credentials), asks it to cancel by creating a file, and reads the outcome from its exit code. The child writes its
events to a spool file, which the service delivers to the broker while the child runs and after: the child holds no
broker credentials. Under torchrun every rank reads the same folder.
"""

import json
import os
import sys
import uuid
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import JobInputs, JobStartEvent
from epochscope_trainer.settings import SERVICE_KEYS

CONFIG_FILE = "config.json"  # the job's config, written by the service before the child starts
INPUTS_FILE = "inputs.json"  # what the job reads (object keys, hashes, model source): the start event's `inputs`
INPUTS_DIR = "inputs"  # the service stages the job's datasets here (`input_staging`)
CANCEL_FILE = "cancel"  # created by the service, holding why: the child ends the job as cancelled, with that reason
USER_CANCEL = "cancelled by the user"  # the reason of a cancel file with none in it
SPOOL_FILE = "spool.sqlite"  # the child's events (`spool_store`); the service delivers them to the broker
KAFKA_ENV_PREFIX = "EPOCHSCOPE_KAFKA_"  # the broker's address and the service's login: never the child's
KAFKA_ENV_KEPT = frozenset({"EPOCHSCOPE_KAFKA_MAX_MESSAGE_BYTES"})  # the child sizes its events by it
# The object store's location and credentials (and any cloud credentials from the environment): the service stages
# the inputs and uploads the checkpoints, so the child holds none.
STORE_ENV_PREFIXES = ("EPOCHSCOPE_STORE_", "AWS_")
LOG_FILE = "job.log"  # the child's stdout and stderr
WARM_READY = b"ready"  # what the warm process (job/warm_process.py) sends the service once it has imported the runner
IDENTITY_ENV = ("JOB_ID", "JOB_USER_ID", "JOB_TOKEN")  # the job's identity, passed in the environment
IDENTITY_FILE = "identity.json"  # the identity for a forked child, which it reads and removes (`take_identity`)
ATTEMPT_ENV = "JOB_ATTEMPT_ID"  # the dispatch this run is; stamped on every event the child publishes (fencing)


class ChildExit(IntEnum):
    """The child's exit codes; any other code is a crash."""

    FINISHED = 0  # completed, failed or cancelled, and all events in the spool file (the service delivers them)
    UNDELIVERED = 3  # events left in the spool file (a child that published to the broker itself said so)
    INTERRUPTED = 4  # stopped by SIGTERM for a trainer shutdown: no final status, the job is re-run
    EVENTS_LOST = 5  # events not spooled (a full disk, or too many held in memory): the final status among them


def prepare_job_dir(work_dir: Path, event: JobStartEvent) -> Path:
    """The job's folder under `work_dir`, with the config and the inputs the child reads, and no cancel file: a
    folder kept from an earlier attempt of the job (fenced, its spool not delivered yet) holds that attempt's."""
    job_dir = work_dir / str(event.job_id)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / CANCEL_FILE).unlink(missing_ok=True)
    (job_dir / CONFIG_FILE).write_text(event.config.model_dump_json(indent=2))
    (job_dir / INPUTS_FILE).write_text(event.inputs.model_dump_json(indent=2))
    return job_dir


def read_job_config(job_dir: Path) -> JobConfig:
    return JobConfig.model_validate_json((job_dir / CONFIG_FILE).read_text())


def read_job_inputs(job_dir: Path) -> JobInputs:
    return JobInputs.model_validate_json((job_dir / INPUTS_FILE).read_text())


OMP_WAIT_POLICY = "OMP_WAIT_POLICY"


def child_env(event: JobStartEvent) -> dict[str, str]:
    """The child's environment: `worker_env` plus the job's identity."""
    return {**worker_env(), **identity_env(event)}


def worker_env() -> dict[str, str]:
    """The service's environment less the service's keys (a job speaks only for itself), the broker's settings (the
    child writes its events to its spool, never to the broker) and the object store's (the service stages its inputs
    and uploads its checkpoints): what a job's child runs with, before its identity. The warm process a child is
    forked from (`warm_launcher`) starts with it, so libraries that read a variable at import see the child's.

    OpenMP's threads sleep while they wait (OMP_WAIT_POLICY=PASSIVE) unless the operator says otherwise: spinning
    threads fight the services beside them for the cores, and a round measured 245 s spinning against 9.5 s
    sleeping on a loaded 2-core machine (docs/performance.md)."""
    service = {name: value for name, value in os.environ.items() if not _withheld_from_child(name)}
    return {OMP_WAIT_POLICY: "PASSIVE", **service}


def identity_env(event: JobStartEvent) -> dict[str, str]:
    """The job's identity, by IDENTITY_ENV and ATTEMPT_ENV name."""
    identity = (str(event.job_id), event.user_id, event.job_token or "")
    attempt = {ATTEMPT_ENV: str(event.attempt_id)} if event.attempt_id else {}
    return {**dict(zip(IDENTITY_ENV, identity, strict=True)), **attempt}


def write_identity(job_dir: Path, event: JobStartEvent) -> None:
    """For a child forked from the warm process: the job's identity in a file only the trainer's user can read,
    which the child takes (`take_identity`) and removes, so the warm process never holds it."""
    path = job_dir / IDENTITY_FILE
    path.unlink(missing_ok=True)  # an earlier attempt's, whose child never read it
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as identity:
        json.dump(identity_env(event), identity)


def take_identity(job_dir: Path) -> dict[str, str]:
    """In a forked child: the job's identity (`write_identity`), its file removed."""
    path = job_dir / IDENTITY_FILE
    try:
        return {str(name): str(value) for name, value in json.loads(path.read_text()).items()}
    finally:
        path.unlink(missing_ok=True)


def _withheld_from_child(name: str) -> bool:
    return (
        name in SERVICE_KEYS
        or (name.startswith(KAFKA_ENV_PREFIX) and name not in KAFKA_ENV_KEPT)
        or name.startswith(STORE_ENV_PREFIXES)
    )


def read_identity() -> dict[str, str]:
    """In the child: the job's identity from the environment, by IDENTITY_ENV name."""
    return {name: os.environ[name] for name in IDENTITY_ENV}


@dataclass(frozen=True)
class JobIdentity:
    """Who the child speaks for: the job, its token, and the dispatch (attempt) this run is. Every event of the
    job carries all three (`envelope`); the writer checks the token and fences stale attempts by the attempt id."""

    job_id: Any
    job_token: str
    attempt_id: uuid.UUID | None = None

    @classmethod
    def from_environment(cls) -> "JobIdentity":
        """In the child: the identity the service passed (`child_env`)."""
        identity = read_identity()
        attempt = os.environ.get(ATTEMPT_ENV)
        return cls(uuid.UUID(identity["JOB_ID"]), identity["JOB_TOKEN"], uuid.UUID(attempt) if attempt else None)

    def envelope(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "job_token": self.job_token, "attempt_id": self.attempt_id}


def child_rank() -> int:
    """In the child: this process's rank under torchrun (which sets RANK), 0 for a plain process."""
    return int(os.environ.get("RANK", "0"))


def job_command(job_dir: Path, processes: int) -> list[str]:
    """The child: one process, or torchrun with `processes` ranks (gloo on CPU, nccl on GPU)."""
    job = ["-m", "epochscope_trainer.job.runner", "--job-dir", str(job_dir)]
    if processes == 1:
        return [sys.executable, *job]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *job]


def request_cancel(job_dir: Path, reason: str = USER_CANCEL) -> None:
    (job_dir / CANCEL_FILE).write_text(reason)


def cancel_requested(job_dir: Path) -> bool:
    return (job_dir / CANCEL_FILE).exists()


def cancel_reason(job_dir: Path) -> str:
    """Why the job was cancelled (call once `cancel_requested`)."""
    try:
        return (job_dir / CANCEL_FILE).read_text()[:200] or USER_CANCEL
    except OSError:
        return USER_CANCEL


def has_spool(job_dir: Path) -> bool:
    return (job_dir / SPOOL_FILE).exists()
