"""The upload scan reads JSONL in blocks and takes a block of plain chat rows in compiled code (jsonl_blocks.py):
its report, row index and token counts must be what the shared reader (`read_rows`) finds row by row, whatever
the lines around, and its budgets must refuse what the reader refuses, with the same message (cases written out
here, and generated files of plain chat rows and near misses)."""

import io
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import obstore
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from obstore.store import LocalStore
from tokenizers import Tokenizer, models, pre_tokenizers

from epochscope_api.datasets import jsonl_blocks
from epochscope_api.datasets.jsonl_blocks import ChatBlock, jsonl_items
from epochscope_api.datasets.method_report import MethodTally
from epochscope_api.datasets.row_index import index_key
from epochscope_api.datasets.scan import _no_usable_row, _scan, _TokenBatches, _TokenTally
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
    chat(("assistant", "a greeting"), ("user", "a question"), ("assistant", "the answer")),  # a prompt
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
    b'{"messages": [{"role": "user", "content": "x"}]} {"messages": [{"role": "user", "content": "y"}]}',
    b'{"messages": [{"role": "user", "content": "x"}]},{"messages": [{"role": "user", "content": "y"}]}',
    b'{"messages": [{"role": "user", "content": "a\tb"}]}',
    b'\xef\xbb\xbf{"messages": [{"role": "user", "content": "after a BOM"}]}',
    b'  {"messages": [{"role": "user", "content": "indented"}]}',
    b'{"messages": [{"role": "user", "content": "crlf"}]}\r',
    b"",
    b"   ",
    b"not json",
    b'{"text": "a text row in a chat dataset"}',
    b'{"prompt": "p", "chosen": "c", "rejected": "r"}',
]
ALIKE_LINES = [  # lines both paths read as the same plain chat row (orjson and msgspec alike keep a key's last value)
    b'{"messages": [{"role": "user", "content": "a", "content": "b"}]}',
    b'{"messages": [{"role": "robot", "role": "user", "content": "a"}]}',
    b'{"messages": null, "messages": [{"role": "user", "content": "a"}]}',
    b'{"m\\u0065ssages": [{"role": "\\u0075ser", "content": "\\ud83d\\ude00"}]}',
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


@pytest.mark.parametrize("alike", ALIKE_LINES, ids=range(len(ALIKE_LINES)))
def test_a_file_with_lines_both_paths_read_alike_reads_the_same(
    tmp_path: Path, small_blocks: None, alike: bytes
) -> None:
    data = b"\n".join(PLAIN * 3 + [alike] * 3 + PLAIN * 3) + b"\n"
    assert scanned(tmp_path, data, DatasetLimits()) == expected(data, DatasetLimits())
    assert expected(data, DatasetLimits())["usable"] == len(PLAIN) * 6 + 3


def test_a_line_of_spaces_and_a_line_of_two_rows_in_one_block_read_as_row_by_row(tmp_path: Path) -> None:
    """Together they hold as many values as lines: the lines' own bounds must send the block line by line."""
    two_on_a_line = PLAIN[0] + b" " + PLAIN[2]
    data = b"\n".join(PLAIN * 3 + [b"   ", two_on_a_line] + PLAIN * 3) + b"\n"
    assert ChatBlock not in kinds_read(data, DatasetLimits())
    assert scanned(tmp_path, data, DatasetLimits()) == expected(data, DatasetLimits())


def test_plain_chat_rows_after_a_text_row_are_of_another_format(tmp_path: Path, small_blocks: None) -> None:
    data = b"\n".join([b'{"text": "the first usable row sets the format"}', *PLAIN * 6]) + b"\n"
    report = scanned(tmp_path, data, DatasetLimits())
    assert report == expected(data, DatasetLimits())
    assert report["usable"] == 1


def test_a_file_of_plain_chat_rows_only_is_one_compiled_block_with_the_same_report(tmp_path: Path) -> None:
    data = b"\n".join(PLAIN * 50) + b"\n"
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


ROLE_NAMES = ["system", "user", "assistant", "assistant", "tool", "robot"]
TEXTS = st.text(st.characters(codec=None), max_size=30)  # any code point, lone surrogates too
MESSAGES = st.lists(st.tuples(st.sampled_from(ROLE_NAMES), TEXTS), max_size=4)


@st.composite
def near_chat_lines(draw: st.DrawFn) -> bytes:
    """A plain chat row, mostly one the compiled path takes, else a near miss: another role, a field more or
    less, a null, two rows on a line, spaces, a BOM, a CR, a byte that breaks the JSON or its UTF-8, a blank line."""
    messages = [{"role": role, "content": text} for role, text in draw(MESSAGES)]
    if messages and draw(st.integers(0, 9)) == 0:
        messages[-1][draw(st.sampled_from(["content", "role", "weight"]))] = draw(st.sampled_from([None, 0, "x"]))
    row: dict = {"messages": messages}
    if draw(st.integers(0, 19)) == 0:
        row = draw(st.sampled_from([{}, {"messages": None}, {**row, "label": "x"}, {"text": "t"}]))
    line = json.dumps(row, ensure_ascii=draw(st.booleans()), separators=draw(st.sampled_from([None, (",", ":")])))
    data = line.encode("utf-8", "surrogatepass")  # a raw lone surrogate is bytes that are not UTF-8
    edit = draw(st.integers(0, 11))
    if edit < 2:
        data = data + (b"," if edit else b" ") + data
    elif edit == 2:
        data = draw(st.sampled_from([b" ", b"\xef\xbb\xbf", b"\t"])) + data + draw(st.sampled_from([b"", b" ", b"\r"]))
    elif edit == 3:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\x00", b"\\", b'"', b"}", b",", b"\xc3"])) + data[at:]
    elif edit == 4:
        data = draw(st.sampled_from([b"", b"  "]))
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(near_chat_lines(), min_size=1, max_size=40),
    block_bytes=st.sampled_from([300, 2000, jsonl_blocks.BLOCK_BYTES]),
    row_max_bytes=st.sampled_from([1024, 4 << 20]),
    file_max_decoded_bytes=st.sampled_from([2048, 4 << 30]),
    ends_in_newline=st.booleans(),
)
def test_generated_files_read_the_same_in_blocks_as_row_by_row(
    lines: list[bytes], block_bytes: int, row_max_bytes: int, file_max_decoded_bytes: int, ends_in_newline: bool
) -> None:
    limits = DatasetLimits(row_max_bytes=row_max_bytes, file_max_decoded_bytes=file_max_decoded_bytes)
    data = b"\n".join(lines) + b"\n" * ends_in_newline
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as folder:
        patch.setattr(jsonl_blocks, "BLOCK_BYTES", block_bytes)
        found = outcome(lambda: scanned(Path(folder), data, limits))
    wanted = outcome(lambda: expected(data, limits))
    if isinstance(wanted, dict) and not wanted["usable"]:  # the scan refuses a file the reader finds no row in
        wanted = (
            "refused",
            _no_usable_row(wanted["rows"], Counter(reason for _, reason in wanted["malformed"])).problem,
        )
    assert found == wanted


def outcome(read: Callable[[], dict]) -> dict | tuple[str, str]:
    """What a read gives, or the message it refuses the file with (the scan's is the reader's)."""
    try:
        return read()
    except OverBudget as exc:
        return ("refused", str(exc))
    except UnusableUpload as exc:
        return ("refused", exc.problem)
