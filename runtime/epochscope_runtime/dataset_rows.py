"""Dataset files and their rows, read the same way by the API (to validate an upload) and the trainer.

File types: JSONL, CSV (columns `messages` as JSON text, `prompt`/`completion`, or `text`) and Parquet
(the same columns; `messages` a list of {role, content} structs). Row formats, fixed by the first usable row:
- chat: {"messages": [{"role": ..., "content": ...}, ...]}; the prompt is the conversation up to the last
  assistant turn, the ground truth that last assistant turn;
- prompt_completion: {"prompt": str, "completion": str};
- conversational: {"prompt": [messages], "completion": [messages]} (TRL's conversational prompt-completion);
- text: {"text": str}; no ground truth.

`row` is a row's 0-based position in its file (its line in JSONL, its record in CSV and Parquet): the source of
its stable sample id. Reports show it 1-based as `line`.
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from epochscope_schemas.dataset_formats import FileType, RowFormat

ROLES = frozenset({"system", "user", "assistant", "tool"})
PARQUET_BATCH_ROWS = 1024


@dataclass(frozen=True)
class Example:
    """One usable row."""

    row: int
    data: dict[str, Any]

    @property
    def format(self) -> RowFormat:
        return row_format(self.data)


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


def _messages_problem(messages: object, field: str) -> str | None:
    if not isinstance(messages, list) or not messages:
        return f"{field} is not a non-empty list of messages"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"a message in {field} without a known role"
        if not isinstance(message.get("content"), str):
            return f"a message in {field} without text content"
    return None


def row_problem(data: object) -> str | None:
    """Why a row cannot be used, or None."""
    if not isinstance(data, dict):
        return "not an object"
    if "messages" in data:
        return _messages_problem(data["messages"], "messages")
    if "prompt" in data or "completion" in data:
        prompt, completion = data.get("prompt"), data.get("completion")
        if isinstance(prompt, list) or isinstance(completion, list):
            return _messages_problem(prompt, "prompt") or _messages_problem(completion, "completion")
        if isinstance(prompt, str) and isinstance(completion, str) and prompt:
            return None
        return "prompt/completion must both be strings (a non-empty prompt) or both lists of messages"
    if isinstance(data.get("text"), str) and data["text"]:
        return None
    return "no messages, prompt/completion or text"


def row_format(data: dict[str, Any]) -> RowFormat:
    if "messages" in data:
        return RowFormat.CHAT
    if "prompt" in data:
        return RowFormat.CONVERSATIONAL if isinstance(data["prompt"], list) else RowFormat.PROMPT_COMPLETION
    return RowFormat.TEXT


def _checked(row: int, data: object) -> Example | Malformed:
    problem = row_problem(data)
    return Malformed(row, problem) if problem else Example(row, data)  # type: ignore[arg-type]


def _jsonl_rows(file: IO[bytes]) -> Iterator[Example | Malformed]:
    """orjson parses a line several times faster than json (the reader's main cost on a large upload); it also
    refuses what Postgres and tokenizers cannot take: invalid UTF-8 and lone surrogates."""
    for row, line in enumerate(file):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Malformed(row, _why_not_json(line))
            continue
        yield _checked(row, data)


def _why_not_json(line: bytes) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "not valid UTF-8"
    return "not JSON"


def _csv_rows(file: IO[bytes]) -> Iterator[Example | Malformed]:
    """Raises UnicodeDecodeError on bytes that are not UTF-8 and csv.Error on a broken file."""
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")  # type: ignore[type-var]
    for row, record in enumerate(csv.DictReader(text)):
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


def _parquet_rows(file: IO[bytes]) -> Iterator[Example | Malformed]:
    """Raises pyarrow.ArrowInvalid on a file that is not Parquet."""
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(file).iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for record in batch.to_pylist():
            yield _checked(row, {key: value for key, value in record.items() if value is not None})
            row += 1


READERS = {FileType.JSONL: _jsonl_rows, FileType.CSV: _csv_rows, FileType.PARQUET: _parquet_rows}


def read_rows(file: IO[bytes], file_type: FileType) -> Iterator[Example | Malformed]:
    """Every row of the file, usable or not, in file order (blank JSONL lines are not rows).

    A row whose format differs from the first usable row's is Malformed: a dataset has one format.
    """
    first: RowFormat | None = None
    for item in READERS[file_type](file):
        if isinstance(item, Example):
            kind = item.format
            first = first or kind
            if kind != first:
                item = Malformed(item.row, f"a {kind} row in a {first} dataset")
        yield item


def training_record(example: Example) -> dict[str, Any]:
    """The row as TRL's SFTTrainer expects it (conversational, prompt-completion or language modeling)."""
    data = example.data
    if "messages" in data:
        return {"messages": data["messages"]}
    if "prompt" in data:
        return {"prompt": data["prompt"], "completion": data["completion"]}
    return {"text": data["text"]}
