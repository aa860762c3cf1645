"""Domain errors: what the data layer raises when a request cannot be served, with no HTTP in them.

main.py maps each one to its HTTP response in one place; `str(error)` is the message a client sees.
"""


class DomainError(Exception):
    """Base of every error the data layer raises for a client to see."""


class JobNotFound(DomainError):
    """No such job for the current user: row-level security hides other users' jobs, so theirs read as none."""

    def __init__(self) -> None:
        super().__init__("job not found")


class CheckpointNotFound(DomainError):
    """No such checkpoint for this job (never one, pruned, or its objects are gone)."""

    def __init__(self) -> None:
        super().__init__("checkpoint not found")


class SampleNotFound(DomainError):
    """The job has no prediction for this sample."""

    def __init__(self) -> None:
        super().__init__("sample not found")


class PredictionNotFound(DomainError):
    """The job has no prediction at this step for this sample (another user's reads as none)."""

    def __init__(self) -> None:
        super().__init__("prediction not found")


class VerdictNotFound(DomainError):
    """The user has not judged this prediction."""

    def __init__(self) -> None:
        super().__init__("verdict not found")


class BadParameter(DomainError):
    """A query parameter the schema accepts but the request cannot be served with; the message names it."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")


class BadCursor(DomainError):
    """A cursor (or Last-Event-ID) this API did not make; `name` says which parameter held it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name}: not a cursor from this API")


class UnknownDatasets(DomainError):
    """Job config fields naming a dataset the current user does not have (another user's reads the same)."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(f"dataset not found: {', '.join(fields)}")
        self.fields = fields


class EventTooLarge(DomainError):
    """The job's start event would exceed the event bus's message size."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the job's start event would be {size} bytes, over the event bus's limit of {limit} bytes")


class DatasetNotFound(DomainError):
    """No such dataset for the current user (row-level security hides other users' datasets)."""

    def __init__(self) -> None:
        super().__init__("dataset not found")


class DatasetInUse(DomainError):
    """A queued or running job reads the dataset; deleting it would pull the data from under the job."""

    def __init__(self, job_ids: list[str]) -> None:
        self.job_ids = job_ids
        super().__init__(f"the dataset is in use by queued or running jobs: {', '.join(job_ids)}")


class UploadTooLarge(DomainError):
    """The upload passed the server's limit; nothing of it was kept."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload exceeds the limit of {limit} bytes ({_human_bytes(limit)})")


class UnusableUpload(DomainError):
    """The upload cannot be a dataset (no file part, unknown type, undecodable, no usable row); nothing was kept.
    The message names the `file` field, as a 422 does."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"file: {problem}")
        self.problem = problem

    def __reduce__(self) -> tuple[type["UnusableUpload"], tuple[str]]:
        return (UnusableUpload, (self.problem,))  # the upload scan raises it in a child process


class DatabaseBusy(DomainError):
    """No database connection freed up in time (a 503 with Retry-After); nothing was done."""

    retry_after = 5

    def __init__(self) -> None:
        super().__init__("the database is busy: try again shortly")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class QuotaExceeded(DomainError):
    """A per-user quota would be exceeded; nothing was stored. `limit` names the quota (a setting's suffix), and
    `retry_after` is the seconds after which trying again may succeed (a 429 with Retry-After)."""

    def __init__(self, limit: str, what: str, retry_after: int) -> None:
        super().__init__(f"quota exceeded: {what}")
        self.limit = limit
        self.retry_after = max(1, retry_after)

    @classmethod
    def active_jobs(cls, maximum: int, retry_after: int) -> "QuotaExceeded":
        return cls("active_jobs", f"at most {maximum} queued or running jobs", retry_after)

    @classmethod
    def datasets(cls, maximum: int, retry_after: int) -> "QuotaExceeded":
        return cls("datasets", f"at most {maximum} datasets", retry_after)

    @classmethod
    def dataset_bytes(cls, maximum: int, retry_after: int) -> "QuotaExceeded":
        return cls("dataset_bytes", f"at most {maximum} bytes ({_human_bytes(maximum)}) of datasets", retry_after)

    @classmethod
    def checkpoint_bytes(cls, maximum: int, retry_after: int) -> "QuotaExceeded":
        what = f"at most {maximum} bytes ({_human_bytes(maximum)}) of checkpoints (delete jobs, or keep none)"
        return cls("checkpoint_bytes", what, retry_after)

    @classmethod
    def prediction_bytes(cls, maximum: int, retry_after: int) -> "QuotaExceeded":
        what = f"at most {maximum} bytes ({_human_bytes(maximum)}) of stored predictions (delete jobs to free it)"
        return cls("prediction_bytes", what, retry_after)

    @classmethod
    def rollout_bytes(cls, maximum: int, retry_after: int) -> "QuotaExceeded":
        what = f"at most {maximum} bytes ({_human_bytes(maximum)}) of stored GRPO rollouts (delete jobs to free it)"
        return cls("rollout_bytes", what, retry_after)

    @classmethod
    def writes_per_minute(cls, maximum: int, retry_after: int) -> "QuotaExceeded":
        return cls("writes_per_minute", f"at most {maximum} write requests a minute", retry_after)


def _human_bytes(count: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:g} {unit}"
    return f"{count} bytes"


class GraderTimedOut(DomainError):
    """A grader tried on one answer (POST /v1/graders/run) took longer than the setting allows (a 503)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the grader took longer than {seconds:g} s (EPOCHSCOPE_GRADER_RUN_TIMEOUT_SECONDS)")
