"""A job's datasets: downloaded from the object store by the keys the start event carries, checked against the
event's size and SHA-256, and read with the shared row reader (the same one the API validated the upload with).

The trainer reads only the keys in the event's `inputs`; it has read-only store credentials and no database.
"""

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from epochscope_runtime.dataset_rows import Example, FileType, Malformed, read_rows
from epochscope_runtime.object_store import ObjectStore, download
from epochscope_schemas.events import DatasetObject


class InputError(ValueError):
    """A dataset object the job cannot use (missing, or not the bytes the API stored); the message says why."""


@dataclass
class Dataset:
    """A dataset's usable rows, and how many were malformed and why."""

    examples: list[Example] = field(default_factory=list)
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def add(self, item: Example | Malformed) -> None:
        if isinstance(item, Example):
            self.examples.append(item)
            return
        self.skipped += 1
        self.skip_reasons[item.reason] = self.skip_reasons.get(item.reason, 0) + 1

    def skip_summary(self) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in self.skip_reasons.items())


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fetch(store: ObjectStore, obj: DatasetObject, folder: Path, name: str) -> Path:
    """Download the object to `folder/<name>.<file type>` (streamed) and check it is the bytes the event names.

    Raises InputError on a missing object or a size or SHA-256 mismatch. Each process downloads to its own
    partial file and renames it into place once checked, so ranks of one job never see a half-written file.
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


def read_dataset(path: Path, file_type: FileType) -> Dataset:
    """Every row of a downloaded dataset, usable or counted as malformed (raises ValueError on a broken file)."""
    dataset = Dataset()
    with path.open("rb") as handle:
        for item in read_rows(handle, file_type):
            dataset.add(item)
    return dataset
