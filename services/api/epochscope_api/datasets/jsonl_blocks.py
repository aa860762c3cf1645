"""A JSONL upload read in blocks of whole lines, for the scan: a block whose every line is a plain chat row (an
object with `messages` alone, a non-empty list of messages, each `role` and `content` alone) is decoded and checked
in one compiled call (msgspec's typed `decode_lines` over the whole block, no Python code per row); any other
block is read line by line with the shared reader's `jsonl_row` and `OneFormat`, as `read_rows` reads it.

The compiled path takes a block only where the shared reader would find every line a usable chat row and nothing
else: msgspec refuses, under the typed rows, every other field, type and role, a null, an empty list, an invalid
escape, a lone surrogate, bytes that are not UTF-8 and raw control characters, as orjson does; a duplicate key
keeps its last value in both. What it would read and the line-by-line path not is ruled out around it: a line that
does not begin with `{` and end with `}` (blank lines, a BOM, leading whitespace, a CR before the newline) sends
the block line by line, and so does a line holding two objects (more values than the block has lines; a value
cannot span lines that each begin with `{` and end with `}`). The budgets are charged as the line-by-line path
charges them; a block past one is read line by line, which refuses it at the same row with the same message.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Annotated, Literal

import msgspec
import numpy as np

from epochscope_runtime.dataset_limits import DecodedBudget
from epochscope_runtime.dataset_rows import Example, Malformed, OneFormat, jsonl_row
from epochscope_runtime.row_messages import ROLES
from epochscope_schemas.dataset_formats import RowFormat

BLOCK_BYTES = 4 << 20
_NEWLINE, _OPEN, _CLOSE = ord("\n"), ord("{"), ord("}")


class _Message(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    role: Literal[tuple(sorted(ROLES))]  # type: ignore[valid-type]
    content: str


class _ChatRow(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    messages: Annotated[list[_Message], msgspec.Meta(min_length=1)]


_DECODER = msgspec.json.Decoder(_ChatRow)


def _as_data(row: _ChatRow) -> dict:
    return {"messages": [{"role": message.role, "content": message.content} for message in row.messages]}


@dataclass(frozen=True)
class ChatBlock:
    """Consecutive lines that are all plain chat rows: `rows` their row numbers, `offsets` where each starts in the
    file, `decoded` each row as decoded, `no_prompt` which of them (positions in the block) have their last
    assistant turn first: nothing before the answer."""

    rows: np.ndarray
    offsets: np.ndarray
    decoded: list[_ChatRow]
    no_prompt: np.ndarray

    def example(self, position: int) -> Example:
        """The row at `position` as the shared reader gives it."""
        return Example(int(self.rows[position]), _as_data(self.decoded[position]))

    def examples(self) -> Iterator[Example]:
        """Every row of the block as the shared reader gives it."""
        for row, decoded in zip(self.rows.tolist(), self.decoded, strict=True):
            yield Example(row, _as_data(decoded))


def _blocks(file: IO[bytes], row_max_bytes: int) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of whole lines, about BLOCK_BYTES at a time; a line that passes row_max_bytes + 1 bytes
    before its end comes cut there, as the last block (the line-by-line path then refuses it, as the reader does)."""
    offset, pending = 0, b""
    while chunk := file.read(BLOCK_BYTES):
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        if not cut and len(data) > row_max_bytes + 1:
            yield offset, data[: row_max_bytes + 1]
            return
        if cut:
            yield offset, data[:cut]
            offset += cut
        pending = data[cut:]
    if pending:
        yield offset, pending


def _line_bounds(block: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Where each line of the block starts and ends (its newline, or the block's end)."""
    raw = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(raw == _NEWLINE)
    if not block.endswith(b"\n"):
        ends = np.append(ends, len(block))
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    return starts, ends


def _plain_chat(block: bytes, starts: np.ndarray, ends: np.ndarray) -> tuple[list[_ChatRow], np.ndarray] | None:
    """Each line decoded and which rows have no prompt, if every line is a plain chat row; else None."""
    raw = np.frombuffer(block, np.uint8)
    if not len(starts) or (ends - starts < 2).any() or (raw[starts] != _OPEN).any() or (raw[ends - 1] != _CLOSE).any():
        return None
    try:
        decoded = _DECODER.decode_lines(block)
    except msgspec.DecodeError:
        return None
    if len(decoded) != len(starts):
        return None
    return decoded, _no_prompt(decoded)


def _no_prompt(decoded: list[_ChatRow]) -> np.ndarray:
    """Positions of the rows whose last assistant turn is their first message (sampler.prompt_and_ground_truth's
    prompt, the messages before it, is empty)."""
    return np.array(
        [
            position
            for position, row in enumerate(decoded)
            if row.messages[0].role == "assistant"
            and not any(message.role == "assistant" for message in row.messages[1:])
        ],
        dtype=np.int64,
    )


def jsonl_items(
    file: IO[bytes], budget: DecodedBudget, one_format: OneFormat
) -> Iterator[tuple[Example | Malformed | ChatBlock, int]]:
    """The file's rows as `read_rows` reads them, each with the offset where it starts, and ChatBlocks (with the
    offset of their block) where a whole block is plain chat rows."""
    row = 0
    limits = budget.limits
    for block_offset, block in _blocks(file, limits.row_max_bytes):
        starts, ends = _line_bounds(block)
        sizes = ends - starts
        plain = None
        if one_format.first in (None, RowFormat.CHAT) and sizes.max(initial=0) <= limits.row_max_bytes:
            if budget.total + int(sizes.sum()) <= limits.file_max_decoded_bytes:
                plain = _plain_chat(block, starts, ends)
        if plain is not None:
            budget.total += int(sizes.sum())
            one_format.first = RowFormat.CHAT
            rows = np.arange(row, row + len(starts), dtype=np.int64)
            yield ChatBlock(rows, starts + block_offset, *plain), block_offset
        else:
            for line_row, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True), start=row):
                item = jsonl_row(line_row, block[start : end + 1], budget)
                if item is not None:
                    yield one_format.check(item), block_offset + start
        row += len(starts)
