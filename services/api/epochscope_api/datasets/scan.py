"""Validation of a stored upload: one streaming pass of the shared `read_rows` (the trainer's reader) over the
object, which counts rows, collects the malformed ones with their reasons, counts the rows each training method can
use (method_report.py), counts tokens per catalog model and writes the row index (dataset_index.py) as it goes.
Synchronous and isolated: it runs in a child process with a memory limit and a timeout (isolation.py), within the
decoded-bytes budgets of the row reader (dataset_limits.py), so that no upload can take the API process down with it.
"""

import asyncio
import csv
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import IO, Any

import jinja2
import numpy as np
import pyarrow

from epochscope_api.datasets.csv_offsets import csv_offsets
from epochscope_api.datasets.isolation import FedRun, OutOfMemory, TimedOut, preload, run_isolated
from epochscope_api.datasets.jsonl_blocks import ChatBlock, jsonl_items
from epochscope_api.datasets.method_report import MethodTally
from epochscope_api.datasets.row_index import IndexWriter
from epochscope_api.datasets.token_counts import TokenCounter
from epochscope_api.errors import UnusableUpload
from epochscope_api.response_models import DatasetReport, MalformedRow, TokenTotals
from epochscope_api.settings import ApiSettings
from epochscope_runtime.dataset_limits import DatasetLimits, DecodedBudget, OverBudget
from epochscope_runtime.dataset_rows import (
    Example,
    FileType,
    Malformed,
    OneFormat,
    RowFormat,
    read_rows,
)
from epochscope_runtime.object_store import ObjectStore, open_object
from epochscope_runtime.sampler import Sample, to_sample

TOKEN_BATCH = 512  # samples rendered and encoded together, at most
TOKEN_BATCH_BYTES = 16 << 20  # and at most about this many bytes of rows


@dataclass(frozen=True)
class Scan:
    rows: int
    usable_rows: int
    row_format: RowFormat
    report: DatasetReport


class _TokenTally:
    """Prompt and completion token totals and maxima of one model, counted in batches."""

    def __init__(self, counter: TokenCounter) -> None:
        self._counter = counter
        self.totals = {"prompt_tokens": 0, "completion_tokens": 0, "max_prompt_tokens": 0, "max_completion_tokens": 0}
        self.template_errors = 0

    def _render(self, sample: Sample) -> str | None:
        try:
            return self._counter.render_prompt(sample)
        except (jinja2.TemplateError, ValueError, TypeError):
            self.template_errors += 1
            return None

    def add(self, samples: list[Sample]) -> None:
        prompts = [self._render(sample) for sample in samples]
        prompt_counts = self._counter.count([prompt for prompt in prompts if prompt is not None])
        completion_counts = self._counter.count([sample.ground_truth or "" for sample in samples])
        for name, counts in (("prompt", prompt_counts), ("completion", completion_counts)):
            self.totals[f"{name}_tokens"] += sum(counts)
            self.totals[f"max_{name}_tokens"] = max(self.totals[f"max_{name}_tokens"], *counts, 0)

    def result(self) -> TokenTotals:
        return TokenTotals(**self.totals, template_errors=self.template_errors)


def _items_with_offsets(
    store: ObjectStore,
    key: str,
    file_type: FileType,
    limits: DatasetLimits,
    stack: list[Any],
    header_end: list[int],
    source: IO[bytes] | None,
):
    """(row, byte offset) pairs for every row read_rows yields, read from `source` (a JSONL body as it arrives) or
    else the stored object; the readers opened go on `stack` for closing."""
    if source is not None:
        yield from jsonl_items(source, DecodedBudget(limits), OneFormat())
        return
    file = open_object(store, key)
    stack.append(file)
    if file_type is FileType.JSONL:
        yield from jsonl_items(file, DecodedBudget(limits), OneFormat())
    elif file_type is FileType.CSV:
        second = open_object(store, key)
        stack.append(second)
        # read_rows reads each record first, within the budget, then _csv_offsets the same record
        yield from zip(read_rows(file, file_type, limits), csv_offsets(second, header_end, limits), strict=True)
    else:
        for item in read_rows(file, file_type, limits):
            yield item, 0


def _text_length(sample: Sample) -> int:
    texts = [message["content"] for message in sample.messages or []]
    return sum(map(len, texts)) + len(sample.text or "") + len(sample.ground_truth or "")


def _no_usable_row(rows: int, by_reason: Counter[str]) -> UnusableUpload:
    if not rows:
        return UnusableUpload("no usable row: the file has no rows")
    reasons = ", ".join(f"{reason} ({n} {'row' if n == 1 else 'rows'})" for reason, n in by_reason.most_common())
    return UnusableUpload(f"no usable row: {reasons}")


def _refusal(exc: OutOfMemory | TimedOut, settings: ApiSettings) -> UnusableUpload:
    if isinstance(exc, OutOfMemory):
        return UnusableUpload(
            f"reading the file needed more than {settings.scan_memory_bytes} bytes of memory, the limit"
            f" (EPOCHSCOPE_SCAN_MEMORY_BYTES): {exc}"
        )
    return UnusableUpload(
        f"reading the file took longer than {settings.scan_timeout_seconds:g} s, the limit"
        " (EPOCHSCOPE_SCAN_TIMEOUT_SECONDS)"
    )


def scan_dataset(
    store: ObjectStore, key: str, file_type: FileType, counters: dict[str, TokenCounter], settings: ApiSettings
) -> Scan:
    """The report of the object at `key`, its row index written beside it; UnusableUpload if it cannot be used,
    within the row reader's budgets, the scan's memory limit and its timeout."""
    args = _scan_args(store, key, file_type, counters, settings)
    try:
        return run_isolated(_scan, args, settings.scan_memory_bytes, settings.scan_timeout_seconds)
    except (OutOfMemory, TimedOut) as exc:
        raise _refusal(exc, settings) from None


def _scan_args(
    store: ObjectStore, key: str, file_type: FileType, counters: dict[str, TokenCounter], settings: ApiSettings
) -> tuple[Any, ...]:
    """_scan's arguments after its source, for a scan of the object or of the body as it arrives alike."""
    return (store, key, file_type, counters, settings.upload_report_examples, settings.datasets)


class _TokenBatches:
    """Usable rows' samples, counted by every model's tally a batch at a time."""

    def __init__(self, tallies: dict[str, _TokenTally]) -> None:
        self._tallies = tallies
        self._batch: list[Sample] = []
        self._bytes = 0

    def add(self, example: Example) -> None:
        self._batch.append(to_sample(example, 0))
        self._bytes += _text_length(self._batch[-1])
        if len(self._batch) >= TOKEN_BATCH or self._bytes >= TOKEN_BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._batch:
            for tally in self._tallies.values():
                tally.add(self._batch)
        self._batch, self._bytes = [], 0


def _tally_block(by_method: MethodTally, block: ChatBlock) -> None:
    """A block's rows in two kinds (a prompt before the answer, or none), each judged as its first row is."""
    no_prompt = np.zeros(len(block.rows), bool)
    no_prompt[block.no_prompt] = True
    kinds = [np.flatnonzero(~no_prompt), np.flatnonzero(no_prompt)]
    for positions in sorted((kind for kind in kinds if len(kind)), key=lambda kind: kind[0]):
        by_method.add_alike(block.example(int(positions[0])), block.rows[positions].tolist())


def _scan(
    store: ObjectStore,
    key: str,
    file_type: FileType,
    counters: dict[str, TokenCounter],
    examples: int,
    limits: DatasetLimits,
    source: IO[bytes] | None = None,
) -> Scan:
    tallies = {model_id: _TokenTally(counter) for model_id, counter in counters.items()}
    batches = _TokenBatches(tallies)
    by_reason: Counter[str] = Counter()
    by_method = MethodTally()
    malformed_examples: list[MalformedRow] = []
    rows = usable = 0
    row_format: RowFormat | None = None
    header_end: list[int] = []
    stack: list[Any] = []
    index = IndexWriter(store, key)
    try:
        for item, offset in _items_with_offsets(store, key, file_type, limits, stack, header_end, source):
            if isinstance(item, ChatBlock):
                rows += len(item.rows)
                usable += len(item.rows)
                row_format = row_format or RowFormat.CHAT
                _tally_block(by_method, item)
                index.add_many(item.rows, item.offsets)
                if tallies:
                    for example in item.examples():
                        batches.add(example)
                continue
            rows += 1
            by_method.add(item)
            if isinstance(item, Malformed):
                by_reason[item.reason] += 1
                if len(malformed_examples) < examples:
                    malformed_examples.append(MalformedRow(line=item.row + 1, reason=item.reason))
                continue
            row_format = row_format or item.format
            usable += 1
            index.add(item.row, offset)
            if tallies:
                batches.add(item)
    except OverBudget as exc:
        raise UnusableUpload(str(exc)) from None
    except UnicodeDecodeError as exc:
        raise UnusableUpload(f"not valid UTF-8 text ({exc.reason} at a byte {exc.object[exc.start]:#04x})") from exc
    except csv.Error as exc:
        raise UnusableUpload(f"not a valid CSV file: {exc}") from exc
    except MemoryError:
        raise
    except pyarrow.ArrowException as exc:
        raise UnusableUpload(f"not a valid Parquet file: {exc}") from exc
    finally:
        for file in stack:
            file.close()
    if row_format is None:
        raise _no_usable_row(rows, by_reason)
    batches.flush()
    index.close(header_end[0] if header_end else 0)
    report = DatasetReport(
        malformed=rows - usable,
        malformed_by_reason=dict(by_reason.most_common()),
        malformed_examples=malformed_examples,
        tokens={model_id: tally.result() for model_id, tally in tallies.items()},
        methods=by_method.result(),
    )
    return Scan(rows=rows, usable_rows=usable, row_format=row_format, report=report)


def _scan_body(source: IO[bytes], *args: Any) -> Scan:
    return _scan(*args, source)


preload(__name__)


class FedScan:
    """scan_dataset of an upload whose body is on its way: the scan child reads the bytes as they are stored (on
    another core), not the stored object after. The same budgets, memory limit and refusals; the timeout bounds
    how long the upload waits on the scan (the time the body takes to arrive not counted)."""

    def __init__(self, run: FedRun, settings: ApiSettings) -> None:
        self._run = run
        self._settings = settings

    async def write(self, data: bytes) -> None:
        await self._run.write(data)

    async def result(self) -> Scan:
        try:
            return await self._run.result()
        except (OutOfMemory, TimedOut) as exc:
            raise _refusal(exc, self._settings) from None

    def cancel(self) -> None:
        self._run.cancel()


@dataclass(frozen=True)
class Scanner:
    """Scans as service_layer/datasets.py's upload runs them: of a stored object (a built file, a CSV or Parquet
    upload), off the event loop; of a JSONL upload, while its body is stored (`while_stored`)."""

    store: ObjectStore
    counters: dict[str, TokenCounter]
    settings: ApiSettings

    def __call__(self, key: str, file_type: FileType) -> Awaitable[Scan]:
        return asyncio.to_thread(scan_dataset, self.store, key, file_type, self.counters, self.settings)

    def while_stored(self, key: str, file_type: FileType) -> FedScan | None:
        """The scan of the upload being stored at `key`, fed its bytes as they arrive; None where the type is read
        from the stored object (a CSV's records are read twice, a Parquet file from its end)."""
        if file_type is not FileType.JSONL:
            return None
        settings = self.settings
        args = _scan_args(self.store, key, file_type, self.counters, settings)
        return FedScan(FedRun(_scan_body, args, settings.scan_memory_bytes, settings.scan_timeout_seconds), settings)
