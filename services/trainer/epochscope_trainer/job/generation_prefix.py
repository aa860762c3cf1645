"""A generation batch whose prompts begin alike: the shared beginning computed once, not once per row.

A round's prompts usually share their first tokens (the chat template's opening and the system prompt: 26 of the
demo's 42-52 tokens). Plain batched generation prefills every row's copy of them. Here the shared tokens are run
once as one row, their key/value cache repeated for every row, and generate goes on from there with each row's rest.

Layout of a batch of rows sharing `shared` tokens: the shared tokens, then each row's rest left-padded to the
longest rest; the padding is masked, and generate numbers the positions from the attention mask (its cumulative
sum), so every token has the position it has in the plainly left-padded batch and the answers are the same up to
float rounding (the round's tests pin greedy answers against a plain generate). Without a shared beginning the
layout is the plain left-padded batch.
"""

from dataclasses import dataclass
from typing import Any

import torch

MIN_SHARED_TOKENS = 16  # prefill positions saved, at least: the shared run costs one more pass over the weights


@dataclass(frozen=True)
class PromptBatch:
    input_ids: torch.Tensor  # (rows, shared + longest rest)
    attention_mask: torch.Tensor
    shared: int  # leading tokens every row has in common, run once (0: none)


def prompt_batch(rows: list[list[int]], pad_id: int, device: torch.device) -> PromptBatch:
    """The batch of these token rows, their shared beginning split off where it pays."""
    shared = _shared_length(rows)
    width = max(len(row) for row in rows) - shared
    ids, mask = [], []
    for row in rows:
        padding = width - (len(row) - shared)
        ids.append(row[:shared] + [pad_id] * padding + row[shared:])
        mask.append([1] * shared + [0] * padding + [1] * (len(row) - shared))
    return PromptBatch(torch.tensor(ids, device=device), torch.tensor(mask, device=device), shared)


def shared_cache(model: Any, batch: PromptBatch) -> Any | None:
    """The key/value cache of the batch's shared tokens, computed on one row and repeated for every row; None when
    nothing is shared. For generate's `cache` (generate then prefills only what follows)."""
    if not batch.shared:
        return None
    logits = {"logits_to_keep": 1} if model._supports_logits_to_keep() else {}  # the shared run's logits are unused
    cache = model(input_ids=batch.input_ids[:1, : batch.shared], use_cache=True, **logits).cache
    cache.batch_repeat_interleave(batch.input_ids.shape[0])
    return cache


def _shared_length(rows: list[list[int]]) -> int:
    """Tokens at the start of every row, leaving each row at least one of its own (generate's prefill needs the last
    prompt token of every row); 0 when sharing them would save fewer than MIN_SHARED_TOKENS prefill positions."""
    first, shortest = rows[0], min(len(row) for row in rows)
    shared = 0
    while shared < shortest - 1 and all(row[shared] == first[shared] for row in rows):
        shared += 1
    return shared if shared * (len(rows) - 1) >= MIN_SHARED_TOKENS else 0
