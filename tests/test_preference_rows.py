"""Preference rows (TRL's prompt/chosen/rejected as text or messages, OpenAI's input/preferred_output/
non_preferred_output) read by the shared row reader, normalised to one shape, each bad row with its reason; and the
upload report's per-method part (sft, dpo, grpo), counted by the scan the API runs."""

import io
import json
from pathlib import Path
from typing import Any

import obstore
import pytest
from obstore.store import LocalStore

from epochscope_api.datasets.method_report import MethodTally
from epochscope_api.datasets.scan import scan_dataset
from epochscope_api.settings import ApiSettings
from epochscope_runtime.dataset_limits import DatasetLimits, OverBudget
from epochscope_runtime.dataset_rows import Example, FileType, Malformed, RowFormat, read_rows
from epochscope_runtime.method_rows import NO_ANSWER, NO_PROMPT, NOT_PREFERENCE, PREFERENCE_FOR_DPO
from epochscope_runtime.sampler import to_sample

USER = {"role": "user", "content": "Capital of France?"}
GOOD = {"role": "assistant", "content": "Paris"}
BAD = {"role": "assistant", "content": "Lyon"}


def jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def read(rows: list[Any]) -> list[Example | Malformed]:
    return list(read_rows(io.BytesIO(jsonl(rows)), FileType.JSONL))


def test_trl_text_preference_rows_are_read_as_they_are() -> None:
    (row,) = read([{"prompt": "2+2=", "chosen": "4", "rejected": "5", "label": "four"}])
    assert isinstance(row, Example) and row.format is RowFormat.PREFERENCE
    assert row.data == {"prompt": "2+2=", "chosen": "4", "rejected": "5", "label": "four"}
    sample = to_sample(row, 0)
    assert (sample.text, sample.messages, sample.ground_truth) == ("2+2=", None, "4")  # rounds grade against chosen


def test_trl_conversational_and_openai_preference_rows_normalise_to_the_same_shape() -> None:
    weighted = {**GOOD, "weight": 1}  # extra message fields go: Arrow columns take the first rows' fields
    trl = {"prompt": [USER], "chosen": [weighted], "rejected": [BAD]}
    openai = {"input": {"messages": [USER]}, "preferred_output": [GOOD], "non_preferred_output": [BAD]}
    rows = read([trl, openai])
    assert [row.format for row in rows if isinstance(row, Example)] == [RowFormat.CONVERSATIONAL_PREFERENCE] * 2
    assert [row.data for row in rows if isinstance(row, Example)] == [
        {"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}
    ] * 2
    sample = to_sample(rows[1], 0)  # type: ignore[arg-type]
    assert (sample.messages, sample.ground_truth) == ([USER], "Paris")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"prompt": "2+2=", "chosen": "4"}, "a preference row needs prompt, chosen and rejected"),
        ({"prompt": "2+2=", "chosen": "4", "rejected": ""}, "prompt, chosen and rejected must not be empty"),
        ({"prompt": "2+2=", "chosen": "4", "rejected": "4"}, "chosen and rejected are the same answer"),
        (
            {"prompt": "2+2=", "chosen": [GOOD], "rejected": "5"},
            "prompt, chosen and rejected must all be text or all lists of messages",
        ),
        ({"prompt": [USER], "chosen": [USER], "rejected": [BAD]}, "chosen has a message that is not an assistant turn"),
        ({"prompt": [], "chosen": [GOOD], "rejected": [BAD]}, "prompt is not a non-empty list of messages"),
        ({"prompt": [USER], "chosen": [{"role": "assistant"}], "rejected": [BAD]}, "a message in chosen without text"),
        (
            {"input": {"messages": [USER]}, "preferred_output": [GOOD]},
            "a preference row needs input, preferred_output and non_preferred_output (OpenAI's format)",
        ),
        (
            {"input": [USER], "preferred_output": [GOOD], "non_preferred_output": [BAD]},
            "input is not an object with messages",
        ),
        (
            {"input": {"messages": [{"role": "robot", "content": "x"}]}, "preferred_output": [GOOD]}
            | {"non_preferred_output": [BAD]},
            "a message in input.messages without a known role",
        ),
        (
            {"input": {"messages": [USER]}, "preferred_output": [GOOD], "non_preferred_output": [USER]},
            "non_preferred_output has a message that is not an assistant turn",
        ),
        (
            {"input": {"messages": [USER]}, "preferred_output": [GOOD], "non_preferred_output": [GOOD]},
            "chosen and rejected are the same answer",
        ),
    ],
)
def test_a_bad_preference_row_is_malformed_with_its_reason(row: dict[str, Any], reason: str) -> None:
    (item,) = read([row])
    assert isinstance(item, Malformed) and item.reason.startswith(reason), item


def test_text_and_conversational_preference_rows_do_not_mix_in_one_dataset() -> None:
    rows = read(
        [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}]
    )
    assert isinstance(rows[1], Malformed)
    assert rows[1].reason == "a conversational_preference row in a preference dataset"


def test_a_preference_row_past_the_row_budget_is_refused_naming_its_row() -> None:
    small = {"prompt": "2+2=", "chosen": "4", "rejected": "5"}
    big = {
        "input": {"messages": [USER]},
        "preferred_output": [GOOD],
        "non_preferred_output": [BAD | {"content": "x" * 2048}],
    }
    rows = read_rows(io.BytesIO(jsonl([small, big])), FileType.JSONL, DatasetLimits(row_max_bytes=1024))
    assert isinstance(next(rows), Example)
    with pytest.raises(OverBudget, match="row 2"):
        next(rows)


def test_the_per_method_report_counts_usable_rows_and_reasons_with_first_lines() -> None:
    tally = MethodTally()
    items: list[Example | Malformed] = [
        Example(0, {"messages": [USER, GOOD]}),
        Example(1, {"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}),
        Malformed(2, "not JSON"),
        Example(3, {"prompt": "Capital of Spain?"}),  # a prompt-only row (GRPO's)
        Example(4, {"messages": [GOOD]}),  # nothing before the answer: no prompt for GRPO
        Example(5, {"text": "free text"}),
    ]
    for item in items:
        tally.add(item)
    report = {method: rows.model_dump() for method, rows in tally.result().items()}
    assert report == {
        "sft": {
            "usable": 3,
            "unusable": {
                "not JSON": {"rows": 1, "first_lines": [3]},
                PREFERENCE_FOR_DPO: {"rows": 1, "first_lines": [2]},
                NO_ANSWER: {"rows": 1, "first_lines": [4]},
            },
        },
        "dpo": {
            "usable": 1,
            "unusable": {
                NOT_PREFERENCE: {"rows": 4, "first_lines": [1, 4, 5, 6]},
                "not JSON": {"rows": 1, "first_lines": [3]},
            },
        },
        "grpo": {
            "usable": 4,
            "unusable": {"not JSON": {"rows": 1, "first_lines": [3]}, NO_PROMPT: {"rows": 1, "first_lines": [5]}},
        },
    }


def test_only_the_first_few_lines_of_a_reason_are_kept() -> None:
    tally = MethodTally()
    for row in range(9):
        tally.add(Malformed(row, "not JSON"))
    assert tally.result()["dpo"].unusable["not JSON"].model_dump() == {"rows": 9, "first_lines": [1, 2, 3, 4, 5]}


def test_a_reasons_first_lines_are_its_first_rows_whatever_the_other_methods_say() -> None:
    """NOT_PREFERENCE comes with GRPO's verdict usable on some rows and NO_PROMPT on others: its first lines are
    still the first rows that have it, in order."""
    tally = MethodTally()
    for row in range(10):
        tally.add(Example(row, {"messages": [USER, GOOD] if row % 2 else [GOOD]}))
    report = tally.result()
    assert report["dpo"].unusable[NOT_PREFERENCE].model_dump() == {"rows": 10, "first_lines": [1, 2, 3, 4, 5]}
    assert report["grpo"].model_dump() == {
        "usable": 5,
        "unusable": {NO_PROMPT: {"rows": 5, "first_lines": [1, 3, 5, 7, 9]}},
    }


def test_the_upload_scan_reports_an_openai_preference_file_per_method(tmp_path: Path) -> None:
    settings = ApiSettings(
        job_token_secret="s" * 40, jwt_secret="j" * 40, environment="development", store={"local_dir": str(tmp_path)}
    )
    store = LocalStore(str(tmp_path))
    pairs = [
        {"input": {"messages": [USER]}, "preferred_output": [GOOD], "non_preferred_output": [BAD]},
        {"input": {"messages": [USER]}, "preferred_output": [GOOD], "non_preferred_output": [GOOD]},
        {"input": {"messages": [USER]}, "preferred_output": [GOOD], "non_preferred_output": [{**BAD, "content": "?"}]},
    ]
    obstore.put(store, "prefs.jsonl", jsonl(pairs))
    scan = scan_dataset(store, "prefs.jsonl", FileType.JSONL, {}, settings)
    assert (scan.rows, scan.usable_rows, scan.row_format) == (3, 2, RowFormat.CONVERSATIONAL_PREFERENCE)
    same = {"chosen and rejected are the same answer": {"rows": 1, "first_lines": [2]}}
    assert {method: rows.model_dump() for method, rows in scan.report.methods.items()} == {
        "sft": {"usable": 0, "unusable": {PREFERENCE_FOR_DPO: {"rows": 2, "first_lines": [1, 3]}} | same},
        "dpo": {"usable": 2, "unusable": same},
        "grpo": {"usable": 2, "unusable": same},
    }
