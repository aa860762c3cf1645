"""The upload scan reads JSONL in blocks and takes a block of plain chat rows in compiled code (jsonl_blocks.py):
its report, row index and token counts must be what the shared reader (`read_rows`) finds row by row, whatever
the lines around, and its budgets must refuse what the reader refuses, with the same message."""

import io
import json
from pathlib import Path

import obstore
import pytest
from obstore.store import LocalStore
from tokenizers import Tokenizer, models, pre_tokenizers

from epochscope_api.datasets import jsonl_blocks
from epochscope_api.datasets.jsonl_blocks import ChatBlock, jsonl_items
from epochscope_api.datasets.method_report import MethodTally
from epochscope_api.datasets.row_index import index_key
from epochscope_api.datasets.scan import _scan, _TokenBatches, _TokenTally
from epochscope_api.datasets.token_counts import TokenCounter
from epochscope_api.errors import UnusableUpload
from epochscope_runtime.dataset_limits import DatasetLimits, DecodedBudget, OverBudget
from epochscope_runtime.dataset_rows import Example, FileType, Malformed, OneFormat, read_rows

TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<a>{% endif %}"
)


def chat(*turns: tuple[str, str]) -> bytes:
    return json.dumps({"messages": [{"role": role, "content": content} for role, content in turns]}).encode()


PLAIN = [
    chat(("system", "Be brief."), ("user", "Capital of France?"), ("assistant", "Paris")),
    chat(("assistant", "an answer with nothing before it")),  # no prompt: GRPO cannot use it
    chat(("user", "a question without an answer")),
    chat(("user", 'é ü 😀 \u0000 \\ " /'), ("assistant", "ok"), ("user", "again?")),
]
OTHER_LINES = [  # each a line the compiled path must leave to the line-by-line reader
    b'{"messages": [{"role": "assistant", "content": "weighted", "weight": 0}]}',
    b'{"messages": [{"role": "assistant", "content": "a float weight", "weight": 1.0}]}',
    b'{"messages": [{"role": "user", "content": "x"}], "label": "a reference"}',
    b'{"messages": [{"role": "user", "content": "x", "name": "n"}]}',
    b'{"messages": [{"role": "robot", "content": "x"}]}',
    b'{"messages": [{"role": "user", "content": 3}]}',
    b'{"messages": [{"role": "user", "content": null}]}',
    b'{"messages": [{"role": "user"}]}',
    b'{"messages": []}',
    b'{"messages": null}',
    b"{}",
    b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
    b'{"messages": [{"role": "user", "content": "\xff"}]}',
    b'{"messages": [{"role": "user", "content": "a", "content": "b"}]}',
    b'{"messages": [{"role": "user", "content": "x"}]} {"messages": [{"role": "user", "content": "y"}]}',
    b'\xef\xbb\xbf{"messages": [{"role": "user", "content": "after a BOM"}]}',
    b'  {"messages": [{"role": "user", "content": "indented"}]}',
    b'{"messages": [{"role": "user", "content": "crlf"}]}\r',
    b"",
    b"   ",
    b"not json",
    b'{"text": "a text row in a chat dataset"}',
    b'{"prompt": "p", "chosen": "c", "rejected": "r"}',
]


def counter() -> TokenCounter:
    tokenizer = Tokenizer(models.WordLevel({"[unk]": 0, "Paris": 1, "x": 2}, unk_token="[unk]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return TokenCounter(tokenizer, TEMPLATE, {})


def expected(data: bytes, limits: DatasetLimits) -> dict:
    """What the row-by-row reader finds: the report's parts, the index entries and the token totals."""
    items = list(read_rows(io.BytesIO(data), FileType.JSONL, limits))
    offsets = [0]
    for line in data.splitlines(keepends=True)[:-1]:
        offsets.append(offsets[-1] + len(line))
    tally, tokens = MethodTally(), _TokenTally(counter())
    batches = _TokenBatches({"m": tokens})
    for item in items:
        tally.add(item)
        if isinstance(item, Example):
            batches.add(item)
    batches.flush()
    usable = [item for item in items if isinstance(item, Example)]
    return {
        "rows": len(items),
        "usable": len(usable),
        "malformed": [(item.row + 1, item.reason) for item in items if isinstance(item, Malformed)],
        "methods": {method: rows.model_dump() for method, rows in tally.result().items()},
        "index": [(item.row, offsets[item.row]) for item in usable],
        "tokens": tokens.result().model_dump(),
    }


def scanned(tmp_path: Path, data: bytes, limits: DatasetLimits) -> dict:
    store = LocalStore(str(tmp_path), mkdir=True)
    obstore.put(store, "d.jsonl", data)
    scan = _scan(store, "d.jsonl", FileType.JSONL, {"m": counter()}, 100, limits)
    index = bytes(obstore.get(store, index_key("d.jsonl")).bytes())
    values = [int.from_bytes(index[i : i + 8], "little", signed=True) for i in range(0, len(index) - 8, 8)]
    return {
        "rows": scan.rows,
        "usable": scan.usable_rows,
        "malformed": [(row.line, row.reason) for row in scan.report.malformed_examples],
        "methods": {method: rows.model_dump() for method, rows in scan.report.methods.items()},
        "index": list(zip(values[0::2], values[1::2], strict=True)),
        "tokens": scan.report.tokens["m"].model_dump(),
    }


def kinds_read(data: bytes, limits: DatasetLimits) -> set[type]:
    return {type(item) for item, _ in jsonl_items(io.BytesIO(data), DecodedBudget(limits), OneFormat())}


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few lines, so that one file has blocks of both kinds."""
    monkeypatch.setattr(jsonl_blocks, "BLOCK_BYTES", 400)


@pytest.mark.parametrize("other", OTHER_LINES, ids=range(len(OTHER_LINES)))
def test_a_file_reads_the_same_in_blocks_as_row_by_row(tmp_path: Path, small_blocks: None, other: bytes) -> None:
    lines = PLAIN * 3 + [other] + PLAIN * 3
    data = b"\n".join(lines)  # the last line without its newline
    limits = DatasetLimits()
    assert kinds_read(data, limits) >= {ChatBlock}  # the compiled path took some blocks
    assert not kinds_read(other + b"\n" + other, limits) & {ChatBlock}  # and never a block holding `other`
    assert scanned(tmp_path, data, limits) == expected(data, limits)


def test_plain_chat_rows_after_a_text_row_are_of_another_format(tmp_path: Path, small_blocks: None) -> None:
    data = b"\n".join([b'{"text": "the first usable row sets the format"}', *PLAIN * 6]) + b"\n"
    report = scanned(tmp_path, data, DatasetLimits())
    assert report == expected(data, DatasetLimits())
    assert report["usable"] == 1


def test_a_file_of_plain_chat_rows_only_is_one_compiled_block_with_the_same_report(tmp_path: Path) -> None:
    data = b"\n".join(PLAIN * 50) + b"\n"
    assert kinds_read(data, DatasetLimits()) == {ChatBlock}
    assert scanned(tmp_path, data, DatasetLimits()) == expected(data, DatasetLimits())


def test_a_block_parsed_in_pieces_on_threads_reads_as_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyarrow parses a block in pieces on its threads, each piece at least the block's longest line (a line longer
    than a piece would fail the compiled parse and send the whole block line by line)."""
    monkeypatch.setattr(jsonl_blocks, "PARSE_PIECE_BYTES", 300)
    long_line = chat(("user", "long " * 200), ("assistant", "ok"))
    data = b"\n".join(PLAIN * 20 + [long_line] + PLAIN * 20) + b"\n"
    assert kinds_read(data, DatasetLimits()) == {ChatBlock}
    assert scanned(tmp_path, data, DatasetLimits()) == expected(data, DatasetLimits())


@pytest.mark.parametrize("block_bytes", [400, jsonl_blocks.BLOCK_BYTES], ids=["line by line", "one block"])
@pytest.mark.parametrize(
    "limits",
    [DatasetLimits(row_max_bytes=1024), DatasetLimits(file_max_decoded_bytes=4096)],
    ids=["row budget", "file budget"],
)
def test_the_budgets_refuse_at_the_row_the_reader_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: DatasetLimits, block_bytes: int
) -> None:
    monkeypatch.setattr(jsonl_blocks, "BLOCK_BYTES", block_bytes)
    long_row = chat(("user", "x" * 1100), ("assistant", "y"))
    data = b"\n".join(PLAIN * 10 + [long_row] + PLAIN * 10) + b"\n"
    with pytest.raises(OverBudget) as by_reader:
        list(read_rows(io.BytesIO(data), FileType.JSONL, limits))
    store = LocalStore(str(tmp_path), mkdir=True)
    obstore.put(store, "d.jsonl", data)
    with pytest.raises(UnusableUpload) as by_scan:
        _scan(store, "d.jsonl", FileType.JSONL, {}, 10, limits)
    assert str(by_reader.value) in str(by_scan.value)


def test_a_line_past_the_row_budget_is_refused_before_it_is_read_whole(small_blocks: None) -> None:
    limits = DatasetLimits(row_max_bytes=1024)
    data = PLAIN[0] + b"\n" + b'{"text": "' + b"x" * 100_000
    file = io.BytesIO(data)
    with pytest.raises(OverBudget, match="row 2 decodes to more than 1024 bytes"):
        list(jsonl_items(file, DecodedBudget(limits), OneFormat()))
    assert file.tell() < 2 * 1024 + 2 * jsonl_blocks.BLOCK_BYTES
