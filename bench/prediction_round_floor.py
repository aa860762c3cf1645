"""The fastest a CPU can generate a prediction round with a given model: measured machine rates and the model's work.

Machine (measured in the benchmark's own process, torch fp32 with the thread count the trainer uses):
- matmul GFLOP/s: the best of a few square matmuls and of the model's own decode shapes, (batch x hidden) @
  (hidden x out), each timed over repeats (2 * m * k * n FLOPs per matmul);
- copy GB/s: a tensor larger than the caches copied into another, bytes read + bytes written per second.

Model (from its config): P = the parameters a token is multiplied by, every linear weight including the output
projection (lm_head: a (hidden x vocab) matmul per generated token even when tied to the input embedding; the input
embedding itself is a lookup and is left out); attention over a context of c tokens: 4 * layers * c * (heads *
head_dim) FLOPs (q.k and weights.v).

A round of prompts p_i (after the chat template) and answers of n_i tokens, in batches as the round runs them:
- prefill FLOPs = sum_i sum_{t < p_i} (2 * P_body + 4 * layers * t * d_attn) + 2 * P_head per prompt (HF computes
  the logits of the last position only);
- decode step s of a batch (B rows still generating): FLOPs = sum_rows (2 * P + 4 * layers * (p_i + s) * d_attn);
  bytes = the weights (4 * P, read once per step whatever B) + the KV cache read (2 * layers * kv_dim * 4 * context
  per row);
- time floor = sum over the steps of max(FLOPs / matmul rate, bytes / copy rate) (a roofline per step), prefill at
  the matmul rate; the generated-tokens/s floor = sum_i n_i / time floor.

A round that reached it would do no Python, no padding, no softmax or norm work; the ratio says how close it gets.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

FP32_BYTES = 4


@dataclass(frozen=True)
class MachineRates:
    matmul_gflops: float  # the best measured
    matmul_gflops_by_shape: dict[str, float]
    copy_gbytes_per_s: float
    threads: int


@dataclass(frozen=True)
class ModelWork:
    """What one token costs the model, from its config."""

    body_params: int  # linear weights of the decoder layers
    head_params: int  # the output projection (hidden x vocab)
    layers: int
    attention_width: int  # heads * head_dim: q.k and weights.v per context token
    kv_width: int  # kv heads * head_dim

    @property
    def params(self) -> int:
        return self.body_params + self.head_params

    @classmethod
    def of(cls, config: Any) -> "ModelWork":
        hidden, layers = config.hidden_size, config.num_hidden_layers
        head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
        attention = config.num_attention_heads * head_dim
        kv = config.num_key_value_heads * head_dim
        mlp = 3 * hidden * config.intermediate_size  # gate, up, down
        per_layer = hidden * attention + 2 * hidden * kv + attention * hidden + mlp  # q, k, v, o
        return cls(per_layer * layers, hidden * config.vocab_size, layers, attention, kv)

    def decode_flops(self, context: int) -> int:
        """One generated token attending to `context` tokens."""
        return 2 * self.params + 4 * self.layers * context * self.attention_width

    def prefill_flops(self, prompt_tokens: int) -> int:
        attention = 4 * self.layers * self.attention_width * prompt_tokens * (prompt_tokens - 1) // 2
        return 2 * self.body_params * prompt_tokens + attention + 2 * self.head_params

    def kv_bytes(self, context: int) -> int:
        return 2 * self.layers * self.kv_width * FP32_BYTES * context


@dataclass(frozen=True)
class RoundFloor:
    compute_s: float  # every FLOP at the matmul rate
    memory_s: float  # every step's weights and KV cache at the copy rate
    roofline_s: float  # per step, the slower of the two; prefill at the matmul rate
    generated_tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.generated_tokens / self.roofline_s


def round_floor(
    work: ModelWork, rates: MachineRates, prompt_tokens: Sequence[int], generated: Sequence[int], batch_size: int
) -> RoundFloor:
    """The round's floor with its prompts in batches of `batch_size` in the given order (each row's context is its
    own prompt: padding is overhead, not work); `generated[i]` tokens answered prompt i."""
    flop_rate, byte_rate = rates.matmul_gflops * 1e9, rates.copy_gbytes_per_s * 1e9
    compute = memory = roofline = 0.0
    for start in range(0, len(prompt_tokens), batch_size):
        rows = range(start, min(start + batch_size, len(prompt_tokens)))
        prefill = sum(work.prefill_flops(prompt_tokens[i]) for i in rows) / flop_rate
        compute, roofline = compute + prefill, roofline + prefill
        for step in range(max(generated[i] for i in rows)):
            live = [i for i in rows if step < generated[i]]
            flops = sum(work.decode_flops(prompt_tokens[i] + step) for i in live)
            bytes_read = FP32_BYTES * work.params + sum(work.kv_bytes(prompt_tokens[i] + step) for i in live)
            compute += flops / flop_rate
            memory += bytes_read / byte_rate
            roofline += max(flops / flop_rate, bytes_read / byte_rate)
    return RoundFloor(compute, memory, roofline, sum(generated))


def measure_rates(hidden: int, wide: int, batch: int, seconds: float = 0.5) -> MachineRates:
    """Matmul GFLOP/s (square, and the decode shapes (batch x hidden) @ (hidden x wide) and back) and copy GB/s."""
    shapes = {
        "square 512": (512, 512, 512),
        "square 1024": (1024, 1024, 1024),
        f"decode {batch}x{hidden}@{hidden}x{wide}": (batch, hidden, wide),
        f"decode {batch}x{wide}@{wide}x{hidden}": (batch, wide, hidden),
        f"prefill {batch * 128}x{hidden}@{hidden}x{wide}": (batch * 128, hidden, wide),
    }
    with torch.inference_mode():
        by_shape = {name: round(_matmul_gflops(m, k, n, seconds), 2) for name, (m, k, n) in shapes.items()}
        copy = _copy_gbytes_per_s(seconds)
    return MachineRates(max(by_shape.values()), by_shape, round(copy, 2), torch.get_num_threads())


def _matmul_gflops(m: int, k: int, n: int, seconds: float) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    torch.mm(a, b, out=out)  # warm-up: the kernel choice and first touch of `out`
    return 2 * m * k * n * _per_s(lambda: torch.mm(a, b, out=out), seconds) / 1e9


def _copy_gbytes_per_s(seconds: float) -> float:
    source = torch.randn(32 * 1024 * 1024)  # 128 MiB: past any CPU cache
    target = torch.empty_like(source)
    target.copy_(source)
    return 2 * source.numel() * FP32_BYTES * _per_s(lambda: target.copy_(source), seconds) / 1e9


def _per_s(operation: Any, seconds: float) -> float:
    """Calls per second of `operation` over `seconds` of calls: on a shared machine the rate the round beside it
    gets too (the benchmark measures the rates between its rounds), not an idle machine's best."""
    calls = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        operation()
        calls += 1
    return calls / elapsed
