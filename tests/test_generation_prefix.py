"""A round's batch runs the tokens its prompts begin with alike once: the same greedy answers as a plain generate of
the left-padded batch, and the shared tokens run as one row. The tiny model, no broker, no database."""

from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_model import spread_tiny_model

from epochscope_trainer.job.generation import GenerationSettings, generate
from epochscope_trainer.job.generation_prefix import MIN_SHARED_TOKENS, prompt_batch

SHARED = "0 1 2 3 4 5 6 7 8 9 10 plus minus times equals question answer. "  # the rounds' system prompt
REQUESTS = ["hello world", "What is the capital of France? Tell me please.", "2 plus", "The answer is 42."]
GREEDY = GenerationSettings(max_new_tokens=12, temperature=0.0, top_p=1.0, seed=0, batch_size=4)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    return spread_tiny_model(tiny_model_dir)


def prompts() -> list[str]:
    return [SHARED + request for request in REQUESTS]


def plain_generate(model: Any, tokenizer: Any, prompts: list[str]) -> list[str]:
    """The prompts left-padded in one batch, every row prefilled whole (as rounds generated before)."""
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    model.eval()
    with torch.inference_mode():
        output = model.generate(
            **inputs, max_new_tokens=GREEDY.max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    new_tokens = output[:, inputs["input_ids"].shape[1] :]
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in new_tokens]


def test_shared_beginning_runs_once_and_answers_as_a_plain_generate(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    rows = sorted(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts())
    expected = plain_generate(model, tokenizer, prompts())
    runs: list[tuple[int, ...]] = []
    hook = model.register_forward_pre_hook(
        lambda _, args, kwargs: runs.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True
    )
    try:
        answers = generate(model, tokenizer, prompts(), GREEDY)
    finally:
        hook.remove()
    assert [answer.text for answer in answers] == expected
    assert len(set(expected)) > 1  # the rows' own tokens matter: not one answer for all
    shared = runs[0][1]
    assert runs[0][0] == 1 and shared * (len(REQUESTS) - 1) >= MIN_SHARED_TOKENS  # the system prompt, run once
    assert runs[1] == (len(REQUESTS), rows[-1] - shared)  # then each row's rest: no row prefills the shared part


def test_rows_keep_their_positions_where_the_rest_is_padded(tiny: tuple[Any, Any]) -> None:
    """Rows whose own part is short sit behind padding between the shared tokens and their rest."""
    model, tokenizer = tiny
    first, second = prompts()[:2]
    batch = [first, first + "hello", second]
    assert [answer.text for answer in generate(model, tokenizer, batch, GREEDY)] == plain_generate(
        model, tokenizer, batch
    )


def test_batch_layout_shares_only_what_pays() -> None:
    head = list(range(100, 120))  # 20 tokens alike
    batch = prompt_batch([[*head, 1, 2], [*head, 3]], pad_id=0, device=torch.device("cpu"))
    assert batch.shared == 20
    assert batch.input_ids.tolist() == [[*head, 1, 2], [*head, 0, 3]]
    assert batch.attention_mask.tolist() == [[1] * 22, [1] * 20 + [0, 1]]
    assert prompt_batch([head, [*head, 5]], 0, torch.device("cpu")).shared == 19  # each row keeps one of its own
    short = prompt_batch([[7, 8, 9], [7, 8, 1, 2]], pad_id=0, device=torch.device("cpu"))
    assert short.shared == 0  # 2 tokens saved: the plain left-padded batch
    assert short.input_ids.tolist() == [[0, 7, 8, 9], [7, 8, 1, 2]]
    assert short.attention_mask.tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]
    assert prompt_batch([[*head, 1]], 0, torch.device("cpu")).shared == 0  # one row: nothing to share
