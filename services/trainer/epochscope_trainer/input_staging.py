"""A job's datasets, staged by the trainer service into the job folder before the child starts.

The service downloads each dataset the start event names (`inputs`: train, and eval and samples when given) with its
own store credentials, checks it against the event's size and SHA-256, and leaves it at `inputs/<name>.<type>`; the
child, which holds no store credentials, reads it there. A dataset that cannot be staged (missing, or not the bytes
the API stored) leaves `inputs/<name>.error` with the reason instead, which the child reports as it reported its own
download's failure: a failed job for the training data, a warning for the samples.
"""

import hashlib
import os
from pathlib import Path

from epochscope_runtime.object_store import ObjectStore, download
from epochscope_schemas.events import DatasetObject, JobInputs

ERROR_SUFFIX = ".error"


class InputError(ValueError):
    """A dataset object the job cannot use (missing, or not the bytes the API stored); the message says why."""


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fetch(store: ObjectStore, obj: DatasetObject, folder: Path, name: str) -> Path:
    """Download the object to `folder/<name>.<file type>` (streamed) and check it is the bytes the event names.

    Raises InputError on a missing object or a size or SHA-256 mismatch. The download goes to a partial file,
    renamed into place once checked, so no reader ever sees a half-written file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.{obj.file_type}"
    partial = folder / f".{name}.{obj.file_type}.partial-{os.getpid()}"
    try:
        written = download(store, obj.key, partial)
    except FileNotFoundError:
        partial.unlink(missing_ok=True)
        raise InputError(f"{name} dataset {obj.dataset_id}: object {obj.key} is not in the store") from None
    try:
        if written != obj.bytes:
            raise InputError(f"{name} dataset {obj.dataset_id}: object {obj.key} has {written} bytes, not {obj.bytes}")
        actual = sha256_of(partial)
        if actual != obj.sha256:
            raise InputError(
                f"{name} dataset {obj.dataset_id}: object {obj.key} has SHA-256 {actual}, not {obj.sha256} "
                "(the stored object changed after upload)"
            )
    except InputError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    return target


def stage_inputs(store: ObjectStore, inputs: JobInputs, folder: Path) -> None:
    """In the service: every dataset of the job into `folder`, or its `.error` file saying why not."""
    for name, obj in (("train", inputs.train), ("eval", inputs.eval), ("samples", inputs.samples)):
        if obj is None:
            continue
        (folder / f"{name}{ERROR_SUFFIX}").unlink(missing_ok=True)
        try:
            fetch(store, obj, folder, name)
        except Exception as exc:  # noqa: BLE001  the store away or refusing: the job fails saying so, not the service
            folder.mkdir(parents=True, exist_ok=True)
            message = str(exc) if isinstance(exc, InputError) else f"{name} dataset {obj.dataset_id}: {exc!r}"
            (folder / f"{name}{ERROR_SUFFIX}").write_text(message[:2000])


def staged_input(folder: Path, obj: DatasetObject, name: str) -> Path:
    """In the child: the staged dataset's path; InputError with the service's reason when it was not staged."""
    error = folder / f"{name}{ERROR_SUFFIX}"
    if error.exists():
        raise InputError(error.read_text())
    path = folder / f"{name}.{obj.file_type}"
    if not path.is_file():
        raise InputError(f"{name} dataset {obj.dataset_id} was not staged by the trainer service")
    return path
