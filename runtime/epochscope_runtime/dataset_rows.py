"""Dataset files and their rows, read the same way by the API (to validate an upload) and the trainer.

File types: JSONL, CSV (columns `messages` as JSON text, `prompt`/`completion`, or `text`) and Parquet
(the same columns; `messages` a list of {role, content} structs). Row formats, fixed by the first usable row:
- chat: {"messages": [{"role": ..., "content": ...}, ...]}; the prompt is the conversation up to the last
  assistant turn, the ground truth that last assistant turn. An assistant turn may carry `"weight": 0` or `1`
  (OpenAI's chat fine-tuning format): 0 keeps it as context that SFT does not train on; null is no weight;
- prompt_completion: {"prompt": str, "completion": str}; a prompt-only row, {"prompt": str} (a GRPO prompt), has no
  completion: no ground truth, and nothing for SFT to learn unless it trains on every token;
- conversational: {"prompt": [messages], "completion": [messages]} (TRL's conversational prompt-completion);
- text: {"text": str}; no ground truth;
- preference and conversational_preference (for DPO): TRL's prompt/chosen/rejected (text or messages) or OpenAI's
  input/preferred_output/non_preferred_output, normalised to TRL's shape by preference_rows.py; the ground truth
  is the chosen answer.

`row` is a row's 0-based position in its file (its line in JSONL, its record in CSV and Parquet): the source of
its stable sample id. Reports show it 1-based as `line`.
"""

import csv
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from epochscope_runtime.dataset_limits import DatasetLimits, DecodedBudget
from epochscope_runtime.preference_rows import (
    is_preference_row,
    normalised_preference,
    preference_format,
    preference_problem,
)
from epochscope_runtime.row_messages import messages_problem
from epochscope_schemas.dataset_formats import FileType, RowFormat


@dataclass(frozen=True)
class Example:
    """One usable row."""

    row: int
    data: dict[str, Any]

    @property
    def format(self) -> RowFormat:
        """Worked out once per row (the reader, the method checks and the scan each ask it), kept in the instance's
        __dict__ as functools.cached_property does, without its lock (Python 3.11's costs more than the work)."""
        known = self.__dict__.get("_format")
        if known is None:
            known = self.__dict__["_format"] = row_format(self.data)
        return known


@dataclass(frozen=True)
class Malformed:
    """A row that cannot be used, and why."""

    row: int
    reason: str


def file_type_of(filename: str) -> FileType | None:
    """The file type its name says (.jsonl, .json lines as .ndjson, .csv, .parquet), or None."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {"jsonl": FileType.JSONL, "ndjson": FileType.JSONL, "csv": FileType.CSV, "parquet": FileType.PARQUET}.get(
        suffix
    )


def row_problem(data: object) -> str | None:
    """Why a row cannot be used, or None."""
    if not isinstance(data, dict):
        return "not an object"
    if is_preference_row(data):
        return preference_problem(data)
    if "messages" in data:
        return messages_problem(data["messages"], "messages")
    if "prompt" in data or "completion" in data:
        prompt, completion = data.get("prompt"), data.get("completion")
        if isinstance(prompt, list) or isinstance(completion, list):
            return messages_problem(prompt, "prompt") or messages_problem(completion, "completion")
        if isinstance(prompt, str) and (isinstance(completion, str) or "completion" not in data) and prompt:
            return None
        return (
            "prompt/completion must both be strings (a non-empty prompt; a prompt alone is a prompt-only row) or"
            " both lists of messages"
        )
    if isinstance(data.get("text"), str) and data["text"]:
        return None
    return "no messages, prompt/completion or text"


def row_format(data: dict[str, Any]) -> RowFormat:
    """The format of a usable row as read (a preference row normalised)."""
    if "chosen" in data:
        return preference_format(data)
    if "messages" in data:
        return RowFormat.CHAT
    if "prompt" in data:
        return RowFormat.CONVERSATIONAL if isinstance(data["prompt"], list) else RowFormat.PROMPT_COMPLETION
    return RowFormat.TEXT


def _checked(row: int, data: object) -> Example | Malformed:
    problem = row_problem(data)
    if problem:
        return Malformed(row, problem)
    return Example(row, normalised_preference(data) if is_preference_row(data) else data)  # type: ignore[arg-type]


def jsonl_row(row: int, line: bytes, budget: DecodedBudget) -> Example | Malformed | None:
    """One JSONL line (`row` its 0-based line number, `line` with its newline if it has one), charged to the budget;
    None if it is blank. orjson parses a line several times faster than json; it also refuses what Postgres and
    tokenizers cannot take: invalid UTF-8 and lone surrogates."""
    budget.charge(row, len(line) - line.endswith(b"\n"))  # a line of limit + 1 bytes without its newline is over
    if not line.strip():
        return None
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return Malformed(row, _why_not_json(line))
    return _checked(row, data)


def _jsonl_rows(file: IO[bytes], budget: DecodedBudget) -> Iterator[Example | Malformed]:
    """A line is read only up to the row budget: a longer one is refused before it is held whole."""
    limit = budget.limits.row_max_bytes
    row = 0
    while line := file.readline(limit + 1):
        item = jsonl_row(row, line, budget)
        if item is not None:
            yield item
        row += 1


def _why_not_json(line: bytes) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    return "not JSON"


class _RecordLines:
    """A CSV text's lines for csv.reader, each read only up to the row budget, counting the UTF-8 bytes of the
    record being read (`row`): a record past the budget is refused before csv holds it whole."""

    def __init__(self, text: IO[str], budget: DecodedBudget) -> None:
        self._text = text
        self._budget = budget
        self.row = 0
        self.record_bytes = 0

    def start(self, row: int) -> None:
        self.row, self.record_bytes = row, 0

    def __iter__(self) -> "_RecordLines":
        return self

    def __next__(self) -> str:
        line = self._text.readline(self._budget.limits.row_max_bytes + 1)
        if not line:
            raise StopIteration
        self.record_bytes += len(line.encode("utf-8"))
        if self.record_bytes > self._budget.limits.row_max_bytes:
            self._budget.charge(self.row, self.record_bytes)
        return line


def csv_dict_reader(lines: Iterable[str], limits: DatasetLimits) -> csv.DictReader:
    """csv.DictReader whose fields may be as long as a row's budget (csv's own default stops at 128 KiB, which would
    refuse a CSV row that JSONL accepts). The limit is csv's, process-wide: every reader here sets the same one."""
    csv.field_size_limit(limits.row_max_bytes)
    return csv.DictReader(lines)


def _csv_rows(file: IO[bytes], budget: DecodedBudget) -> Iterator[Example | Malformed]:
    """Raises UnicodeDecodeError on bytes that are not UTF-8 and csv.Error on a broken file."""
    lines = _RecordLines(io.TextIOWrapper(file, encoding="utf-8-sig", newline=""), budget)  # type: ignore[type-var]
    reader = csv_dict_reader(lines, budget.limits)
    _ = reader.fieldnames
    for row in itertools.count():
        lines.start(row)
        record = next(reader, None)
        if record is None:
            return
        budget.charge(row, lines.record_bytes)
        data: dict[str, Any] = {key: value for key, value in record.items() if key and value not in (None, "")}
        if None in record:
            yield Malformed(row, "more values than columns")
            continue
        if "messages" in data:
            try:
                data["messages"] = json.loads(data["messages"])
            except json.JSONDecodeError:
                yield Malformed(row, "messages is not JSON")
                continue
        yield _checked(row, data)


def _parquet_rows(file: IO[bytes], budget: DecodedBudget) -> Iterator[Example | Malformed]:
    """Raises pyarrow.ArrowInvalid on a file that is not Parquet."""
    from epochscope_runtime.parquet_rows import parquet_records

    for row, record in enumerate(parquet_records(file, budget.limits)):
        yield _checked(row, record)


READERS = {FileType.JSONL: _jsonl_rows, FileType.CSV: _csv_rows, FileType.PARQUET: _parquet_rows}


class OneFormat:
    """A dataset has one format, its first usable row's: a usable row of another format is Malformed."""

    def __init__(self) -> None:
        self.first: RowFormat | None = None

    def check(self, item: Example | Malformed) -> Example | Malformed:
        if isinstance(item, Example):
            kind = item.format
            self.first = self.first or kind
            if kind != self.first:
                return Malformed(item.row, f"a {kind} row in a {self.first} dataset")
        return item


def read_rows(
    file: IO[bytes], file_type: FileType, limits: DatasetLimits | None = None
) -> Iterator[Example | Malformed]:
    """Every row of the file, usable or not, in file order (blank JSONL lines are not rows).

    A row whose format differs from the first usable row's is Malformed (OneFormat). Raises OverBudget when a row,
    or all rows so far, decode past `limits` (by default the EPOCHSCOPE_DATASET_* settings).
    """
    one_format = OneFormat()
    for item in READERS[file_type](file, DecodedBudget(limits or DatasetLimits())):
        yield one_format.check(item)


def training_record(example: Example) -> dict[str, Any]:
    """The row as TRL's SFTTrainer expects it (conversational, prompt-completion or language modeling)."""
    data = example.data
    if "messages" in data:
        return {"messages": _training_messages(data["messages"])}
    if "prompt" in data:
        prompt, completion = data["prompt"], data.get("completion")
        if isinstance(prompt, list):
            return {"prompt": _training_messages(prompt), "completion": _training_messages(completion)}
        return {"prompt": prompt, "completion": completion}  # completion None: a prompt-only row
    return {"text": data["text"]}


def _training_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every message with the same fields (role, content, weight; 1 where the row gives none): the training rows
    are written to Arrow, whose columns take the fields of the first rows and refuse a later row's other ones."""
    return [
        {"role": m["role"], "content": m["content"], "weight": 1 if m.get("weight") is None else m["weight"]}
        for m in messages
    ]
