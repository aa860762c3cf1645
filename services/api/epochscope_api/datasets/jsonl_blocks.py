"""A JSONL upload read in blocks of whole lines, for the scan: a block whose every line is a plain chat row (an
object with `messages` alone, each message `role` and `content` alone) is decoded and checked by pyarrow's JSON
reader in compiled code (in pieces, on pyarrow's thread pool), without a Python object per row; any other block is
read line by line with the shared reader's `jsonl_row` and `OneFormat`, as `read_rows` reads it.

The compiled path takes a block only where the shared reader would find every line a usable chat row and nothing
else: pyarrow refuses, under the explicit schema, every other field, type, duplicate key, invalid escape or
surrogate; what it would accept and orjson not (a leading BOM or whitespace, blank lines, two objects on a line,
bytes that are not UTF-8, nulls, an empty list, an unknown role) is ruled out before or after it parses. The
budgets are charged as the line-by-line path charges them; a block past one is read line by line, which refuses
it at the same row with the same message.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from epochscope_runtime.dataset_limits import DecodedBudget
from epochscope_runtime.dataset_rows import Example, Malformed, OneFormat, jsonl_row
from epochscope_runtime.row_messages import ROLES
from epochscope_schemas.dataset_formats import RowFormat

BLOCK_BYTES = 4 << 20
PARSE_PIECE_BYTES = 1 << 20  # a block is parsed in pieces about this long (its longest line at least) at once,
# on pyarrow's thread pool
EXAMPLES_AT_ONCE = 512  # rows of a block turned into Python objects together (for token counts)
_MESSAGE = pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])
_PARSE = pj.ParseOptions(
    explicit_schema=pa.schema([pa.field("messages", pa.list_(_MESSAGE))]), unexpected_field_behavior="error"
)
_ROLES = pa.array(sorted(ROLES))
_NEWLINE, _OPEN, _CLOSE = ord("\n"), ord("{"), ord("}")


@dataclass(frozen=True)
class ChatBlock:
    """Consecutive lines that are all plain chat rows: `rows` their row numbers, `offsets` where each starts in the
    file, `messages` each row's list of messages (as Arrow holds them), `no_prompt` which of them (positions in the
    block) have their last assistant turn first: nothing before the answer."""

    rows: np.ndarray
    offsets: np.ndarray
    messages: pa.ListArray
    no_prompt: np.ndarray

    def example(self, position: int) -> Example:
        """The row at `position` as the shared reader gives it."""
        return Example(int(self.rows[position]), {"messages": self.messages[position].as_py()})

    def examples(self) -> Iterator[Example]:
        """Every row of the block as the shared reader gives it, built EXAMPLES_AT_ONCE rows at a time."""
        for start in range(0, len(self.rows), EXAMPLES_AT_ONCE):
            rows = self.rows[start : start + EXAMPLES_AT_ONCE].tolist()
            messages = self.messages.slice(start, EXAMPLES_AT_ONCE).to_pylist()
            for row, row_messages in zip(rows, messages, strict=True):
                yield Example(row, {"messages": row_messages})


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


def _plain_chat(block: bytes, starts: np.ndarray, ends: np.ndarray) -> tuple[pa.ListArray, np.ndarray] | None:
    """Each line's messages and which rows have no prompt, if every line is a plain chat row; else None."""
    raw = np.frombuffer(block, np.uint8)
    if not len(starts) or (ends - starts < 2).any() or (raw[starts] != _OPEN).any() or (raw[ends - 1] != _CLOSE).any():
        return None
    longest = int((ends - starts).max())
    try:
        block.decode("utf-8")
        table = pj.read_json(
            pa.BufferReader(block),
            read_options=pj.ReadOptions(use_threads=True, block_size=max(PARSE_PIECE_BYTES, longest + 1)),
            parse_options=_PARSE,
        )
    except MemoryError:
        raise
    except (pa.ArrowException, UnicodeDecodeError):
        return None
    messages = table.column("messages").combine_chunks()
    if table.num_rows != len(starts) or messages.null_count or not len(messages):
        return None
    flat = messages.flatten()
    roles, contents = flat.field("role"), flat.field("content")
    lengths = pc.list_value_length(messages).to_numpy()
    if flat.null_count or roles.null_count or contents.null_count or lengths.min() < 1:
        return None
    if not pc.all(pc.is_in(roles, _ROLES)).as_py():
        return None
    return messages, _no_prompt(messages, roles)


def _no_prompt(messages: pa.ListArray, roles: pa.Array) -> np.ndarray:
    """Positions of the rows whose last assistant turn is their first message (sampler.prompt_and_ground_truth's
    prompt, the messages before it, is empty)."""
    parents = pc.list_parent_indices(messages).to_numpy()
    first_of_row = messages.offsets.to_numpy()[:-1] - messages.offset
    position = np.arange(len(parents)) - first_of_row[parents]
    assistant = pc.equal(roles, "assistant").to_numpy(zero_copy_only=False)
    last_assistant = np.full(len(messages), -1)
    np.maximum.at(last_assistant, parents[assistant], position[assistant])
    return np.flatnonzero(last_assistant == 0)


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
