"""A job's datasets: staged in the job folder by the trainer service (`input_staging`: downloaded by the keys the
start event carries, checked against the event's size and SHA-256), and read here with the shared row reader (the
same one the API validated the upload with). The job's process holds no store credentials and no database.
A dataset's rows are never all held in memory: one pass counts them, the training rows are written row by row to
a memory-mapped Arrow file (datasets' `from_generator`), and the prediction set is picked in a second pass.
"""

import random
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epochscope_runtime.dataset_limits import DatasetLimits
from epochscope_runtime.dataset_rows import Example, FileType, Malformed, read_rows
from epochscope_runtime.sampler import Sample, sample_positions, to_sample

Record = Callable[[Example], dict[str, Any]]  # a usable row as a training method's trainer reads it


@dataclass
class InputFile:
    """A downloaded dataset file: how many rows are usable, how many malformed and why (counted in one pass);
    its rows read again from the file when they are needed."""

    path: Path
    file_type: FileType
    limits: DatasetLimits
    usable: int = 0
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def count(self, item: Example | Malformed) -> None:
        if isinstance(item, Example):
            self.usable += 1
            return
        self.skipped += 1
        self.skip_reasons[item.reason] = self.skip_reasons.get(item.reason, 0) + 1

    def skip_summary(self) -> str:
        return ", ".join(f"{n} {reason}" for reason, n in self.skip_reasons.items())

    def examples(self) -> Iterator[Example]:
        """The usable rows in file order, read from the file."""
        with self.path.open("rb") as handle:
            for item in read_rows(handle, self.file_type, self.limits):
                if isinstance(item, Example):
                    yield item

    def training_rows(self, cache_dir: Path, record: Record) -> Any:
        """Every usable row as the method's TRL trainer expects it (`record`): a datasets.Dataset on disk
        (memory-mapped), built row by row."""
        from datasets import Dataset as HFDataset

        kwargs = {"path": str(self.path), "file_type": self.file_type, "limits": self.limits, "record": record}
        return HFDataset.from_generator(_training_records, gen_kwargs=kwargs, cache_dir=str(cache_dir))

    def split(self, fraction: float, seed: int, cache_dir: Path, record: Record) -> tuple[Any, Any]:
        """(train, eval): max(1, round(n * fraction)) rows held out for eval, chosen and ordered by a shuffle with
        `seed` (the order a shuffled list of the rows had)."""
        import numpy as np

        order = array("q", range(self.usable))
        random.Random(seed).shuffle(order)
        held_out = max(1, round(self.usable * fraction))
        rows = self.training_rows(cache_dir, record)
        positions = np.frombuffer(order, dtype=np.int64)
        return rows.select(positions[held_out:]), rows.select(positions[:held_out])

    def samples(self, count: int, seed: int) -> list[Sample]:
        """The prediction set (sampler.select_samples over the usable rows), read in one pass."""
        positions = sample_positions(self.usable, count, seed)
        wanted = {position: index for index, position in enumerate(positions)}
        chosen = []
        for position, example in enumerate(self.examples()):
            if len(chosen) == len(wanted):
                break
            if position in wanted:
                chosen.append(to_sample(example, wanted[position]))
        return chosen


def _training_records(
    path: str, file_type: FileType, limits: DatasetLimits, record: Record
) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as handle:
        for item in read_rows(handle, file_type, limits):
            if isinstance(item, Example):
                yield record(item)


def read_dataset(path: Path, file_type: FileType, limits: DatasetLimits) -> InputFile:
    """A downloaded dataset with its rows counted (raises ValueError on a broken file or a row past the budgets)."""
    dataset = InputFile(path, file_type, limits)
    with path.open("rb") as handle:
        for item in read_rows(handle, file_type, limits):
            dataset.count(item)
    return dataset
