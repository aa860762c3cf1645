"""What SFT trains on: a TRL record (`training_record`) tokenized to `input_ids` and `labels`, with -100 on the
tokens the loss leaves out (the form SFTTrainer takes as is).

With `train_on: answers` the loss covers a chat row's assistant turns (every one but those with `weight: 0`, or the
last only), a prompt/completion row's completion (nothing of a prompt-only row), and a text row's whole text; with
`train_on: all`, every token.
An answer's tokens are found by rendering, never by template markers (SmolLM2's chat template has none): the
conversation before the turn is rendered with the generation prompt, then with the turn; the tokens the second
adds are the answer, its end-of-turn token included (what teaches the model to stop). Where a template renders the
two apart (a prompt that is not a prefix of prompt + answer), the answer starts where they part, as in TRL.
"""

from typing import Any

from trl.data_utils import common_prefix_length

from epochscope_schemas.methods import SftMethod

IGNORED = -100  # the label the loss skips

Span = tuple[int, int]  # [start, end) token positions the loss covers


def labelled_tokens(record: dict[str, Any], tokenizer: Any, method: SftMethod) -> dict[str, list[int]]:
    """The record's `input_ids` and its `labels` (the token where the loss covers it, -100 elsewhere)."""
    ids = _token_ids(record, tokenizer)
    if method.train_on == "all":
        return {"input_ids": ids, "labels": list(ids)}
    labels = [IGNORED] * len(ids)
    for start, end in _answer_spans(record, tokenizer, ids, method.assistant_turns):
        labels[start:end] = ids[start:end]
    return {"input_ids": ids, "labels": labels}


def _token_ids(record: dict[str, Any], tokenizer: Any) -> list[int]:
    """The whole row's tokens, as SFTTrainer tokenizes it (an EOS closing a text row and a text completion)."""
    if "messages" in record:
        return _chat_ids(tokenizer, record["messages"])
    if "prompt" in record and isinstance(record["prompt"], list):
        return _chat_ids(tokenizer, record["prompt"] + record["completion"])
    text = record["prompt"] + (record["completion"] or "") if "prompt" in record else record["text"]
    return _text_ids(tokenizer, _with_eos(text, tokenizer))


def _answer_spans(record: dict[str, Any], tokenizer: Any, ids: list[int], assistant_turns: str) -> list[Span]:
    if "messages" in record:
        return _assistant_spans(record["messages"], tokenizer, ids, assistant_turns)
    if "prompt" in record:
        prompt = record["prompt"]
        if isinstance(prompt, list):
            prompt_ids = _chat_ids(tokenizer, prompt, add_generation_prompt=True)
        elif record["completion"] is None:  # a prompt-only row: no answer to learn
            return []
        else:
            prompt_ids = _text_ids(tokenizer, prompt)
        return [(common_prefix_length(prompt_ids, ids), len(ids))]
    return [(0, len(ids))]


def _assistant_spans(
    messages: list[dict[str, Any]], tokenizer: Any, ids: list[int], assistant_turns: str
) -> list[Span]:
    """Each trained assistant turn's tokens in `ids` (the whole conversation's). A turn's tokens are kept only as
    far as the conversation up to it renders as the whole conversation's start."""
    turns = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    if assistant_turns == "last":
        turns = turns[-1:]
    spans = []
    for turn in turns:
        if messages[turn].get("weight") == 0:
            continue
        prompt_ids = _chat_ids(tokenizer, messages[:turn], add_generation_prompt=True)
        through_ids = _chat_ids(tokenizer, messages[: turn + 1])
        start = common_prefix_length(prompt_ids, through_ids)
        spans.append((start, max(start, common_prefix_length(through_ids, ids))))
    return spans


def _chat_ids(tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool = False) -> list[int]:
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    return _text_ids(tokenizer, rendered, add_special_tokens=False)  # the template writes its own special tokens


def _text_ids(tokenizer: Any, text: str, add_special_tokens: bool = True) -> list[int]:
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def _with_eos(text: str, tokenizer: Any) -> str:
    eos = tokenizer.eos_token
    return text if text.endswith(eos) else text + eos
