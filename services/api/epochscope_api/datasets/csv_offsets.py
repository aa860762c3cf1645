"""Where each record of a stored CSV starts, for the row index: the records csv.DictReader yields, as dataset_rows
reads them, with their byte offsets."""

from collections.abc import Iterator
from typing import IO

from epochscope_runtime.dataset_limits import DatasetLimits
from epochscope_runtime.dataset_rows import csv_dict_reader

CSV_CHUNK = 1 << 20


class _CsvLines:
    """A UTF-8 CSV's lines split as io.TextIOWrapper(newline="") splits them (\\n, \\r\\n or \\r), decoded, with
    `position`: the byte offset after the last line handed out. csv pulls lines only as a record needs them, so the
    position before a record is read is where that record starts."""

    def __init__(self, file: IO[bytes]) -> None:
        self._raw = self._split(file)
        self.position = 0
        self._first = True

    @staticmethod
    def _split(file: IO[bytes]) -> Iterator[bytes]:
        pending = b""
        while chunk := file.read(CSV_CHUNK):
            lines = (pending + chunk).splitlines(keepends=True)
            pending = b"" if lines[-1].endswith(b"\n") else lines.pop()  # maybe cut, or a \r before a \n
            yield from lines
        if pending:
            yield from pending.splitlines(keepends=True)

    def __iter__(self) -> "_CsvLines":
        return self

    def __next__(self) -> str:
        raw = next(self._raw)
        self.position += len(raw)
        if self._first:
            self._first = False
            return raw.decode("utf-8-sig")
        return raw.decode("utf-8")


def csv_offsets(file: IO[bytes], header_end: list[int], limits: DatasetLimits) -> Iterator[int]:
    """Where each record of the CSV starts (the records csv.DictReader yields, as in dataset_rows); the header's end
    goes into `header_end`."""
    lines = _CsvLines(file)
    reader = csv_dict_reader(lines, limits)
    _ = reader.fieldnames
    header_end.append(lines.position)
    while True:
        start = lines.position
        try:
            next(reader)
        except StopIteration:
            return
        yield start
