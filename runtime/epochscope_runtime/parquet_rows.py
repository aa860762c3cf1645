"""Parquet records read within a decoded-bytes budget (dataset_limits.py).

String columns are read as dictionaries (`read_dictionary`), so a batch holds each distinct value once however
many rows repeat it; each row's decoded size is computed from the dictionary's value lengths and the indices, and
rows are turned into Python objects only a few megabytes at a time, after the whole file has been measured.
"""

from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from epochscope_runtime.dataset_limits import DatasetLimits, DecodedBudget

BATCH_ROWS = 1024
DECODE_CHUNK_BYTES = 8 << 20  # rows turned into Python objects at once, at most (one row at least)
FIXED_VALUE_BYTES = 8  # a number, a boolean or a null, as measured


def _string_paths(field: pa.Field, prefix: str = "") -> Iterator[str]:
    """The column paths (as read_dictionary names them) of every string or binary leaf under `field`."""
    path = f"{prefix}{field.name}"
    kind = field.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        yield path
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        yield from _string_paths(kind.value_field, f"{path}.list.")
    elif pa.types.is_struct(kind):
        for child in kind.fields:
            yield from _string_paths(child, f"{path}.")


def open_parquet(file: IO[bytes]) -> pq.ParquetFile:
    """The file with its string columns read as dictionaries (raises pyarrow.ArrowInvalid if it is not Parquet)."""
    plain = pq.ParquetFile(file)
    paths = [path for field in plain.schema_arrow for path in _string_paths(field)]
    return pq.ParquetFile(file, metadata=plain.metadata, read_dictionary=paths)


def decoded_sizes(array: pa.Array) -> np.ndarray:
    """Bytes each value of the array decodes to (its strings' UTF-8 bytes, 8 a number), without building it."""
    if isinstance(array, pa.ChunkedArray):
        return np.concatenate([decoded_sizes(chunk) for chunk in array.chunks] or [np.zeros(0, np.int64)])
    kind = array.type
    if pa.types.is_dictionary(kind):
        value_sizes = decoded_sizes(array.dictionary)
        indices = array.indices.fill_null(0).to_numpy(zero_copy_only=False)
        sizes = value_sizes[indices] if len(value_sizes) else np.zeros(len(array), np.int64)
    elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        sizes = pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
        child_sizes = decoded_sizes(array.flatten())
        sizes = np.bincount(parents, weights=child_sizes, minlength=len(array)).astype(np.int64)
    elif pa.types.is_struct(kind):
        sizes = np.zeros(len(array), np.int64)
        for child in array.flatten():
            sizes += decoded_sizes(child)
    else:
        sizes = np.full(len(array), FIXED_VALUE_BYTES, np.int64)
    return sizes


def _row_sizes(batch: pa.RecordBatch) -> np.ndarray:
    sizes = np.zeros(batch.num_rows, np.int64)
    for column in batch.columns:
        sizes += decoded_sizes(column)
    return sizes


def _batches(parquet: pq.ParquetFile, row_groups: Sequence[int] | None) -> Iterator[pa.RecordBatch]:
    """The batches of each row group in turn: a batch across two groups would be a chunked array, which Arrow
    cannot read for a nested column of dictionaries (messages)."""
    for group in range(parquet.num_row_groups) if row_groups is None else row_groups:
        yield from parquet.iter_batches(batch_size=BATCH_ROWS, row_groups=[group])


def _measure(parquet: pq.ParquetFile, limits: DatasetLimits, row_groups: Sequence[int] | None) -> None:
    """Raises OverBudget on the first row, or the first total, past the limits."""
    budget = DecodedBudget(limits)
    row = 0
    for batch in _batches(parquet, row_groups):
        sizes = _row_sizes(batch)
        over = np.flatnonzero(sizes > limits.row_max_bytes)
        if len(over) or budget.total + int(sizes.sum()) > limits.file_max_decoded_bytes:
            for offset, size in enumerate(sizes.tolist()):
                budget.charge(row + offset, size)
        budget.total += int(sizes.sum())
        row += batch.num_rows


def parquet_records(
    file: IO[bytes], limits: DatasetLimits, row_groups: Sequence[int] | None = None
) -> Iterator[dict[str, Any]]:
    """Every record of the file (of `row_groups`, when given), null columns left out; OverBudget before the first
    if a row or the total decodes past the limits."""
    parquet = open_parquet(file)
    _measure(parquet, limits, row_groups)
    for batch in _batches(parquet, row_groups):
        sizes = _row_sizes(batch).tolist()
        start = 0
        while start < batch.num_rows:
            end, chunk = start + 1, sizes[start]
            while end < batch.num_rows and chunk + sizes[end] <= DECODE_CHUNK_BYTES:
                chunk += sizes[end]
                end += 1
            for record in batch.slice(start, end - start).to_pylist():
                yield {key: value for key, value in record.items() if value is not None}
            start = end
