"""Batched generation for a prediction round, leaving the model exactly as training left it."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import gather_object

from epochscope_trainer.job.generation_head import onednn_output_head
from epochscope_trainer.job.generation_lora import folded_adapters
from epochscope_trainer.job.generation_prefix import prompt_batch, shared_cache


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int
    latency_ms: float  # wall time of the batch this prediction was generated in
    prompt_tokens_cut: int = 0  # tokens cut from the prompt's start to fit the context with max_new_tokens


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int
    temperature: float  # 0: greedy
    top_p: float
    seed: int
    batch_size: int = 16


@contextmanager
def inference_mode(model: Any) -> Iterator[None]:
    """Eval mode, KV cache on, activation (gradient) checkpointing off, LoRA adapters folded into the weights
    (generation_lora), the output projection on oneDNN's kernel (generation_head); all restored afterwards."""
    was_training = model.training
    config = model.config
    use_cache = getattr(config, "use_cache", True)
    checkpointing = bool(getattr(model, "is_activation_checkpointing", False))
    if checkpointing:
        model.activation_checkpointing_disable()
    model.eval()
    config.use_cache = True
    try:
        with torch.inference_mode(), folded_adapters(model), onednn_output_head(model):
            yield
    finally:
        config.use_cache = use_cache
        if checkpointing:
            model.activation_checkpointing_enable()
        model.train(was_training)


def prompt_token_budget(model: Any, tokenizer: Any, max_new_tokens: int) -> int | None:
    """Tokens a prompt may have: the model's context (its position embeddings, or the tokenizer's maximum) less
    max_new_tokens, one at least; None when neither is known."""
    context = getattr(model.config, "max_position_embeddings", None)
    if context is None:
        context = getattr(tokenizer, "model_max_length", None)
        context = context if isinstance(context, int) and context < 1 << 30 else None  # transformers' "no limit"
    return None if context is None else max(1, context - max_new_tokens)


def generate(model: Any, tokenizer: Any, prompts: list[str], settings: GenerationSettings) -> list[Generation]:
    """One Generation per prompt, in prompt order. Batches hold prompts of similar length (less padding); the
    tokens a batch's prompts begin with alike are run once (generation_prefix). A prompt longer than the context
    less max_new_tokens loses its first tokens (Generation.prompt_tokens_cut): it keeps its end, the turn to answer."""
    if not prompts:
        return []
    token_rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    budget = prompt_token_budget(model, tokenizer, settings.max_new_tokens)
    cut = [max(0, len(row) - budget) if budget is not None else 0 for row in token_rows]
    order = sorted(range(len(prompts)), key=lambda i: len(token_rows[i]))
    results: dict[int, Generation] = {}
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling = settings.temperature > 0
    with inference_mode(model):
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            inputs = prompt_batch([token_rows[i][cut[i] :] for i in batch], pad_id, device)
            torch.manual_seed(settings.seed + start)
            started = time.perf_counter()
            output = model.generate(
                input_ids=inputs.input_ids,
                attention_mask=inputs.attention_mask,
                cache=shared_cache(model, inputs),
                max_new_tokens=settings.max_new_tokens,
                do_sample=sampling,
                temperature=settings.temperature if sampling else None,
                top_p=settings.top_p if sampling else None,
                top_k=None,
                pad_token_id=pad_id,
            )
            latency_ms = (time.perf_counter() - started) * 1000
            new_tokens = output[:, inputs.input_ids.shape[1] :]
            for row, index in enumerate(batch):
                tokens = _generated_length(new_tokens[row].tolist(), tokenizer.eos_token_id, pad_id)
                text = tokenizer.decode(new_tokens[row][:tokens], skip_special_tokens=True)
                results[index] = Generation(text.strip(), tokens, latency_ms, cut[index])
    return [results[i] for i in range(len(prompts))]


def generate_across_ranks(
    model: Any, tokenizer: Any, prompts: list[str], settings: GenerationSettings
) -> list[Generation]:
    """Each rank generates a contiguous share of the prompts; every rank gets all results, in prompt order.

    Every rank must call it (the gather is collective); in a single process it is `generate`.
    """
    with PartialState().split_between_processes(prompts) as mine:
        local = generate(model, tokenizer, mine, settings)
    return gather_object(local)


def _generated_length(ids: list[int], eos_id: int | None, pad_id: int | None) -> int:
    """Tokens up to and excluding the first end-of-sequence (or the padding after it)."""
    for position, token in enumerate(ids):
        if token == eos_id or (token == pad_id and pad_id != eos_id):
            return position
    return len(ids)
