"""The API's token counter (tokenizers + Jinja, no transformers) against transformers on the tiny model."""

from pathlib import Path
from typing import Any

import pytest

from epochscope_api.datasets.token_counts import TokenCounter, load_token_counter, load_token_counters
from epochscope_runtime.catalog import CatalogModel
from epochscope_runtime.dataset_rows import Example
from epochscope_runtime.sampler import to_sample

ROWS: list[dict[str, Any]] = [
    {
        "messages": [
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": "What is the capital of France? <eos> 42"},
            {"role": "assistant", "content": '{"city": "Paris"}'},
        ]
    },
    {"messages": [{"role": "user", "content": "hello world"}]},  # no answer: the whole chat is the prompt
    {"prompt": "0 1 2 plus 3 equals", "completion": " 6"},
    {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "question?"}],
        "completion": [{"role": "assistant", "content": "answer"}],
    },
    {"text": "hello world times 10"},
]


@pytest.mark.parametrize(
    "row", ROWS, ids=["chat", "chat without answer", "prompt/completion", "conversational", "text"]
)
def test_counts_equal_transformers(row: dict[str, Any], tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    counter = load_token_counter(tiny_model_dir)
    sample = to_sample(Example(0, row), 0)
    if sample.messages is not None:
        prompt = tokenizer.apply_chat_template(sample.messages, tokenize=False, add_generation_prompt=True)
    else:
        prompt = sample.text
    assert counter.render_prompt(sample) == prompt
    assert counter.count_prompt(sample) == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    truth = sample.ground_truth or ""
    assert counter.count([truth])[0] == len(tokenizer(truth, add_special_tokens=False)["input_ids"])


def test_only_models_with_a_tokenizer_get_a_counter(tiny_model_dir: Path) -> None:
    common = {"parameters": 1, "context_length": 8, "chat_template": True, "tokens_per_second": 1.0}
    models = [
        CatalogModel(id="tiny", display_name="t", source="dir:/x", tokenizer_dir=str(tiny_model_dir), **common),
        CatalogModel(id="other", display_name="o", source="hf:org/name", **common),
    ]
    assert set(load_token_counters(models)) == {"tiny"}


def test_a_batch_counts_the_tokens_each_text_encodes_to_alone_without_special_tokens(tiny_model_dir: Path) -> None:
    """count() encodes a batch without offsets (encode_batch_fast): the same ids, one text at a time, with no
    special tokens added, whatever the post-processor would add (here one before and one after each text)."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    tokenizer.post_processor = TemplateProcessing(
        single="<|system|> $A <eos>", special_tokens=[("<|system|>", 2), ("<eos>", 1)]
    )
    counter = TokenCounter(tokenizer, None, {})
    texts = ["", "hello world", "é ü 😀 \u0000 <eos> 42", "  spaces\tand\nlines  ", "x" * 5000, *ROWS_TEXT]
    assert counter.count(texts) == [len(tokenizer.encode(text, add_special_tokens=False).ids) for text in texts]
    assert len(tokenizer.encode("hello").ids) == len(tokenizer.encode("hello", add_special_tokens=False).ids) + 2


ROWS_TEXT = [message["content"] for row in ROWS for message in row.get("messages", [])]
