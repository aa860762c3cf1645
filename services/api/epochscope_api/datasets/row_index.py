"""The row index of a stored dataset, and reads of its usable rows by position without reading the whole object.

At upload the API writes a sidecar object, `<object key>.index`: for each usable row in file order, two
little-endian int64s, its row number and the byte offset where it starts (0 for Parquet, read by row group), then
one int64 trailer: the length of the bytes every read needs in front (a CSV's header line; 0 otherwise). Usable row
`p` is entry `p`, so a page or a sample set reads its few index entries and byte ranges, and parses them with the
shared `read_rows`, the reader the trainer uses.
"""

import asyncio
import io
import json
import struct
import sys
from array import array
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Protocol

import numpy as np
import obstore

from epochscope_runtime.dataset_limits import DatasetLimits
from epochscope_runtime.dataset_rows import Example, FileType, read_rows
from epochscope_runtime.object_store import ObjectStore, open_object
from epochscope_runtime.parquet_rows import parquet_records

ENTRY = struct.Struct("<qq")
TRAILER = struct.Struct("<q")
INDEX_FLUSH_ENTRIES = 1 << 16  # entries an IndexWriter gathers before it writes them


def index_key(object_key: str) -> str:
    return f"{object_key}.index"


def encode_entries(entries: array) -> bytes:
    """Interleaved (row, offset) int64s as the index stores them (little-endian)."""
    if sys.byteorder == "big":
        entries = array("q", entries)
        entries.byteswap()
    return entries.tobytes()


class IndexWriter:
    """The index of an object being scanned, written as the scan goes: entries gathered and written in large writes."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self._writer = obstore.open_writer(store, index_key(key), buffer_size=8 << 20, max_concurrency=2)
        self._entries: list[int] = []

    def add(self, row: int, offset: int) -> None:
        self._entries += (row, offset)
        if len(self._entries) >= 2 * INDEX_FLUSH_ENTRIES:
            self._flush()

    def add_many(self, rows: np.ndarray, offsets: np.ndarray) -> None:
        self._flush()
        self._writer.write(np.column_stack((rows, offsets)).astype("<i8").tobytes())

    def _flush(self) -> None:
        self._writer.write(encode_entries(array("q", self._entries)))
        self._entries.clear()

    def close(self, prefix_length: int) -> None:
        self._flush()
        self._writer.write(TRAILER.pack(prefix_length))
        self._writer.close()


class IndexedFile(Protocol):
    """What a read needs of a dataset: fields of data.datasets.StoredDataset, which job code passes directly."""

    object_key: str
    file_type: FileType
    bytes: int
    usable_rows: int


@dataclass(frozen=True)
class _Entry:
    row: int
    start: int
    end: int  # where the next usable row starts, or the object's end


async def _entries(store: ObjectStore, dataset: IndexedFile, positions: Sequence[int]) -> tuple[list[_Entry], int]:
    """The index entries of `positions` (each with its end), and the length of the prefix."""
    key = index_key(dataset.object_key)
    starts = [position * ENTRY.size for position in positions]
    lengths = [2 * ENTRY.size if position + 1 < dataset.usable_rows else ENTRY.size for position in positions]
    trailer_at = dataset.usable_rows * ENTRY.size
    chunks = await obstore.get_ranges_async(store, key, starts=[*starts, trailer_at], lengths=[*lengths, TRAILER.size])
    entries = []
    for chunk in chunks[:-1]:
        data = bytes(chunk)
        row, start = ENTRY.unpack_from(data)
        end = ENTRY.unpack_from(data, ENTRY.size)[1] if len(data) > ENTRY.size else dataset.bytes
        entries.append(_Entry(row, start, end))
    return entries, TRAILER.unpack(bytes(chunks[-1]))[0]


async def _byte_ranges(
    store: ObjectStore, key: str, prefix_length: int, spans: Sequence[tuple[int, int]]
) -> list[bytes]:
    """The prefix (b"" when there is none) and each (start, end) span of the object, in one coalesced request."""
    spans = [(0, prefix_length), *spans] if prefix_length else list(spans)
    chunks = [
        bytes(chunk)
        for chunk in await obstore.get_ranges_async(
            store, key, starts=[start for start, _ in spans], ends=[end for _, end in spans]
        )
    ]
    return chunks if prefix_length else [b"", *chunks]


def _examples_in(data: bytes, file_type: FileType, rows: Sequence[int]) -> list[Example]:
    """The usable rows of `data` (a prefix and a byte range of the file), labeled with their rows in the file."""
    found = (item for item in read_rows(io.BytesIO(data), file_type) if isinstance(item, Example))
    return [Example(row, example.data) for row, example in zip(rows, found, strict=False)]


def _parquet_examples(
    store: ObjectStore, object_key: str, rows: Sequence[int], max_bytes: int | None = None
) -> list[Example]:
    """Rows of a Parquet object read row group by row group (only the groups holding them, stopping early), each
    within the row reader's budget; with `max_bytes`, only the first rows whose records fit it (one at least)."""
    import pyarrow.parquet as pq

    records: dict[int, dict] = {}
    taken = 0
    with open_object(store, object_key) as file:
        metadata = pq.ParquetFile(file).metadata
        group_starts = [0, *accumulate(metadata.row_group(g).num_rows for g in range(metadata.num_row_groups))]
        wanted: dict[int, list[int]] = {}
        for row in rows:
            wanted.setdefault(bisect_right(group_starts, row) - 1, []).append(row)
        for group, group_rows in wanted.items():
            needed, last = set(group_rows), max(group_rows)
            for row, record in enumerate(parquet_records(file, DatasetLimits(), [group]), start=group_starts[group]):
                if row in needed:
                    if max_bytes is not None and records and taken >= max_bytes:
                        return [Example(r, records[r]) for r in rows if r in records]
                    records[row] = record  # as dataset_rows' Parquet reader makes it: null columns left out
                    taken += _record_bytes(Example(row, record))
                if row >= last:
                    break
    return [Example(row, records[row]) for row in rows if row in records]


async def positions_of_rows(store: ObjectStore, dataset: IndexedFile, rows: Sequence[int]) -> dict[int, int]:
    """Each of `rows` (rows of the file, as sample ids name them) that is usable, with its position: one read of
    the index (16 bytes a usable row) and a binary search per row."""
    stored = await obstore.get_range_async(
        store, index_key(dataset.object_key), start=0, length=dataset.usable_rows * ENTRY.size
    )
    entries = array("q", bytes(stored))
    if sys.byteorder == "big":
        entries.byteswap()
    file_rows = entries[0::2]
    found = {}
    for row in rows:
        position = bisect_right(file_rows, row) - 1
        if position >= 0 and file_rows[position] == row:
            found[row] = position
    return found


async def read_examples(store: ObjectStore, dataset: IndexedFile, positions: list[int]) -> list[Example]:
    """The Examples at `positions` (0-based among usable rows, as sampler.sample_positions returns), in that order."""
    if not positions:
        return []
    if any(not 0 <= position < dataset.usable_rows for position in positions):
        raise IndexError(f"positions must lie in [0, {dataset.usable_rows})")
    entries, prefix_length = await _entries(store, dataset, positions)
    if dataset.file_type is FileType.PARQUET:
        rows = [entry.row for entry in entries]
        return await asyncio.to_thread(_parquet_examples, store, dataset.object_key, rows)
    prefix, *ranges = await _byte_ranges(store, dataset.object_key, prefix_length, [(e.start, e.end) for e in entries])
    examples = []
    for entry, chunk in zip(entries, ranges, strict=True):
        examples += _examples_in(prefix + chunk, dataset.file_type, [entry.row])
    return examples


def _within(sizes: Sequence[int], max_bytes: int) -> int:
    """How many of the first items fit `max_bytes`: each while the bytes before it are under the bound (so one at
    least)."""
    total = 0
    for count, size in enumerate(sizes):
        if total >= max_bytes:
            return count
        total += size
    return len(sizes)


def _record_bytes(example: Example) -> int:
    return len(json.dumps(example.data, default=str, ensure_ascii=False).encode())


async def read_page(
    store: ObjectStore, dataset: IndexedFile, start: int, limit: int, max_bytes: int | None = None
) -> list[Example]:
    """Up to `limit` usable rows from position `start`, in file order: one index read and one byte range. With
    `max_bytes`, only as many rows as fit it (one at least), measured by their byte ranges in the file (Parquet:
    by their records, after reading)."""
    end = min(start + limit, dataset.usable_rows)
    if start >= end:
        return []
    entries, prefix_length = await _entries(store, dataset, range(start, end))
    rows = [entry.row for entry in entries]
    if dataset.file_type is FileType.PARQUET:
        return await asyncio.to_thread(_parquet_examples, store, dataset.object_key, rows, max_bytes)
    if max_bytes:
        entries = entries[: _within([entry.end - entry.start for entry in entries], max_bytes)]
        rows = rows[: len(entries)]
    prefix, chunk = await _byte_ranges(store, dataset.object_key, prefix_length, [(entries[0].start, entries[-1].end)])
    return _examples_in(prefix + chunk, dataset.file_type, rows)
