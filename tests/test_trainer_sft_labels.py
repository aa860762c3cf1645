"""What SFT trains on (job/methods/sft_labels.py): for each row format, every prompt token's label is -100 and every
answer token keeps its id, checked token by token against the tiny tokenizer, whose chat template has no generation
markers. The expected tokens are built piece by piece: the tiny template's special tokens split the rendered text,
so a conversation's tokens are its pieces' tokens one after another, each piece known to be prompt or answer."""

import uuid
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from epochscope_runtime.dataset_rows import Example, row_problem, training_record
from epochscope_schemas.config import JobConfig
from epochscope_schemas.methods import SftMethod
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.methods import TrainingParts, method_for
from epochscope_trainer.job.methods.sft_labels import IGNORED, labelled_tokens
from epochscope_trainer.job.precision import precision_for
from epochscope_trainer.text_limits import DEFAULT_TEXT_MAX_BYTES

ANSWERS, ALL = SftMethod(), SftMethod(train_on="all")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def ids(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def expected(tokenizer: Any, pieces: list[tuple[str, bool]]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of text pieces in order, each (text, trained)."""
    input_ids: list[int] = []
    labels: list[int] = []
    for text, trained in pieces:
        piece = ids(tokenizer, text)
        input_ids += piece
        labels += piece if trained else [IGNORED] * len(piece)
    return input_ids, labels


def turn(role: str, content: str, trained: bool = False) -> list[tuple[str, bool]]:
    """A message as the tiny template renders it; a trained turn's content and end-of-turn token are the answer."""
    return [(f"<|{role}|>", False), (content, trained), ("<|end|>", trained)]


def chat(*messages: dict[str, Any]) -> dict[str, Any]:
    return training_record(Example(0, {"messages": list(messages)}))


SYSTEM = {"role": "system", "content": "Answer with the city only."}
USER = {"role": "user", "content": "What is the capital of France?"}
ANSWER = {"role": "assistant", "content": "Paris"}


def check(actual: dict[str, list[int]], want: tuple[list[int], list[int]]) -> None:
    assert actual["input_ids"] == want[0]
    assert actual["labels"] == want[1]
    assert any(label == IGNORED for label in want[1]) and any(label != IGNORED for label in want[1])


def test_a_chat_row_trains_on_the_assistant_turn_only(tokenizer: Any) -> None:
    pieces = turn("system", SYSTEM["content"]) + turn("user", USER["content"]) + turn("assistant", "Paris", True)
    check(labelled_tokens(chat(SYSTEM, USER, ANSWER), tokenizer, ANSWERS), expected(tokenizer, pieces))


def test_an_assistant_turn_of_weight_0_is_context_and_the_others_are_trained(tokenizer: Any) -> None:
    first = {"role": "assistant", "content": "Paris", "weight": 0}
    follow_up = {"role": "user", "content": "And of France's neighbour?"}
    last = {"role": "assistant", "content": "Berlin", "weight": 1}
    row = chat(SYSTEM, USER, first, follow_up, last)
    head = turn("system", SYSTEM["content"]) + turn("user", USER["content"])
    pieces = head + turn("assistant", "Paris", False) + turn("user", follow_up["content"])
    check(labelled_tokens(row, tokenizer, ANSWERS), expected(tokenizer, pieces + turn("assistant", "Berlin", True)))

    both = chat(SYSTEM, USER, ANSWER, follow_up, {"role": "assistant", "content": "Berlin"})
    pieces = head + turn("assistant", "Paris", True) + turn("user", follow_up["content"])
    want_all = expected(tokenizer, pieces + turn("assistant", "Berlin", True))
    check(labelled_tokens(both, tokenizer, ANSWERS), want_all)
    pieces = head + turn("assistant", "Paris", False) + turn("user", follow_up["content"])
    want_last = expected(tokenizer, pieces + turn("assistant", "Berlin", True))
    check(labelled_tokens(both, tokenizer, SftMethod(assistant_turns="last")), want_last)


def test_a_prompt_completion_row_trains_on_the_completion_and_its_eos(tokenizer: Any) -> None:
    row = training_record(Example(0, {"prompt": "What is the capital of France?", "completion": " Paris."}))
    pieces = [("What is the capital of France?", False), (" Paris.", True), ("<eos>", True)]
    check(labelled_tokens(row, tokenizer, ANSWERS), expected(tokenizer, pieces))


def test_a_prompt_only_row_has_no_answer_to_train_on(tokenizer: Any) -> None:
    row = training_record(Example(0, {"prompt": "What is the capital of France?", "label": "Paris"}))
    tokens = labelled_tokens(row, tokenizer, ANSWERS)
    assert tokens["input_ids"] == expected(tokenizer, [("What is the capital of France?<eos>", False)])[0]
    assert set(tokens["labels"]) == {IGNORED}


def test_a_conversational_prompt_completion_row_trains_on_the_completion(tokenizer: Any) -> None:
    row = training_record(Example(0, {"prompt": [SYSTEM, USER], "completion": [ANSWER]}))
    pieces = turn("system", SYSTEM["content"]) + turn("user", USER["content"]) + turn("assistant", "Paris", True)
    check(labelled_tokens(row, tokenizer, ANSWERS), expected(tokenizer, pieces))


def test_a_text_row_trains_on_everything(tokenizer: Any) -> None:
    row = training_record(Example(0, {"text": "hello world 42"}))
    input_ids, _ = expected(tokenizer, [("hello world 42", True), ("<eos>", True)])
    assert labelled_tokens(row, tokenizer, ANSWERS) == {"input_ids": input_ids, "labels": input_ids}


@pytest.mark.parametrize(
    "data",
    [
        {"messages": [SYSTEM, USER, {**ANSWER, "weight": 0}, USER, ANSWER]},
        {"prompt": "What is the capital of France?", "completion": " Paris."},
        {"prompt": [SYSTEM, USER], "completion": [ANSWER]},
        {"text": "hello world 42"},
    ],
)
def test_train_on_all_keeps_every_token(tokenizer: Any, data: dict[str, Any]) -> None:
    tokens = labelled_tokens(training_record(Example(0, data)), tokenizer, ALL)
    assert tokens["labels"] == tokens["input_ids"] and tokens["input_ids"]


def test_the_row_reader_keeps_a_weight_of_0_or_1_on_an_assistant_turn_and_refuses_others() -> None:
    assert row_problem({"messages": [USER, {**ANSWER, "weight": 0}]}) is None
    assert chat(USER, {**ANSWER, "weight": 0})["messages"][1]["weight"] == 0
    assert chat(USER, ANSWER)["messages"] == [{**USER, "weight": 1}, {**ANSWER, "weight": 1}]  # one Arrow shape
    for bad in ({**ANSWER, "weight": 2}, {**ANSWER, "weight": True}, {**ANSWER, "weight": "0"}, {**USER, "weight": 0}):
        assert "weight" in (row_problem({"messages": [USER, bad]}) or "")


def test_existing_configs_default_to_answers_and_every_assistant_turn() -> None:
    config = JobConfig.model_validate({"model": "m", "dataset_id": str(uuid.uuid4()), "method": {"type": "sft"}})
    assert (config.method.train_on, config.method.assistant_turns) == ("answers", "all")
    with pytest.raises(ValueError):
        SftMethod.model_validate({"train_on": "prompts"})


def rows_config() -> JobConfig:
    return JobConfig.model_validate(
        {"model": "m", "dataset_id": str(uuid.uuid4()), "max_length": 64, "predictions": {"enabled": False}}
    )


def parts_of(rows: Any, model_dir: Path, tokenizer: Any, tmp_path: Path) -> TrainingParts:
    return TrainingParts(
        config=rows_config(),
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        tokenizer=tokenizer,
        train_rows=rows,
        eval_rows=None,
        precision=precision_for(cuda_available=False, cuda_bf16_supported=False),
        output_dir=tmp_path / "output",
        logging_steps=1,
        callbacks=[],
        publish=lambda topic, event: None,  # SFT publishes nothing itself
        job=JobIdentity(uuid.uuid4(), "job-token"),
        text_max_bytes=DEFAULT_TEXT_MAX_BYTES,
    )


def test_the_sft_trainer_is_given_the_labels(tiny_model_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    """The method's trainer trains on these labels (SFTTrainer keeps a `labels` column as is)."""
    from datasets import Dataset

    rows = Dataset.from_list([chat(SYSTEM, USER, ANSWER)])
    trainer = method_for(rows_config()).build_trainer(parts_of(rows, tiny_model_dir, tokenizer, tmp_path))
    labels = trainer.train_dataset[0]["labels"]
    assert labels == labelled_tokens(chat(SYSTEM, USER, ANSWER), tokenizer, ANSWERS)["labels"]
    assert IGNORED in labels


def test_a_weight_first_seen_past_the_first_arrow_batch_is_kept(tmp_path: Path) -> None:
    """The training rows are written to Arrow in batches; a field first seen in a later batch would not fit."""
    import json

    from epochscope_runtime.dataset_limits import DatasetLimits
    from epochscope_runtime.dataset_rows import FileType, training_record
    from epochscope_trainer.job.inputs import InputFile

    rows = [{"messages": [USER, ANSWER]}] * 2500 + [{"messages": [USER, {**ANSWER, "weight": 0}]}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    training = InputFile(path, FileType.JSONL, DatasetLimits()).training_rows(tmp_path / "rows", training_record)
    assert [m["weight"] for m in training[2500]["messages"]] == [1, 0]


def test_rows_with_nothing_to_train_on_are_a_clear_error(tiny_model_dir: Path, tokenizer: Any, tmp_path: Path) -> None:
    from datasets import Dataset

    rows = Dataset.from_list([chat(SYSTEM, USER, {**ANSWER, "weight": 0})])
    with pytest.raises(ValueError, match="no training row has an answer token within max_length 64"):
        method_for(rows_config()).build_trainer(parts_of(rows, tiny_model_dir, tokenizer, tmp_path))
