"""bench/prediction_round_floor.py: the model's work per token and a round's roofline floor, by hand."""

import importlib
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from epochscope_runtime.catalog import demo_catalog

BENCH = Path(__file__).resolve().parent.parent / "bench"
SMOLLM2_135M = SimpleNamespace(  # the demo model's config.json, as converted from its GGUF
    hidden_size=576,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    head_dim=64,
    intermediate_size=1536,
    vocab_size=49152,
)


@pytest.fixture
def floor(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("prediction_round_floor")


def test_the_work_per_token_counts_every_linear_weight_and_the_output_projection(floor: ModuleType) -> None:
    """With the input embedding (tied: the output projection's matrix) and the 61 norm vectors, the parameters a
    token multiplies are the catalog's parameter count."""
    work = floor.ModelWork.of(SMOLLM2_135M)
    norms = (2 * 30 + 1) * 576
    (demo,) = demo_catalog()
    assert work.params + norms == demo.parameters
    assert work.head_params == 576 * 49152
    assert work.decode_flops(context=10) == 2 * work.params + 4 * 30 * 10 * 576


def test_a_round_floor_is_a_roofline_per_step(floor: ModuleType) -> None:
    work = floor.ModelWork(body_params=100, head_params=10, layers=1, attention_width=2, kv_width=1)
    rates = floor.MachineRates(matmul_gflops=1.0, matmul_gflops_by_shape={}, copy_gbytes_per_s=1.0, threads=1)
    one = floor.round_floor(work, rates, prompt_tokens=[3], generated=[2], batch_size=1)
    prefill = 2 * 100 * 3 + 4 * 2 * 3 * 2 // 2 + 2 * 10  # body on 3 tokens, causal attention, head on the last
    steps_flops = [2 * 110 + 4 * 2 * 3, 2 * 110 + 4 * 2 * 4]  # contexts 3 and 4
    steps_bytes = [4 * 110 + 2 * 1 * 4 * 3, 4 * 110 + 2 * 1 * 4 * 4]  # weights once, the row's KV cache
    assert one.compute_s == pytest.approx((prefill + sum(steps_flops)) / 1e9)
    assert one.memory_s == pytest.approx(sum(steps_bytes) / 1e9)
    assert one.roofline_s == pytest.approx((prefill + sum(map(max, steps_flops, steps_bytes))) / 1e9)
    assert one.tokens_per_s == pytest.approx(2 / one.roofline_s)
    batched = floor.round_floor(work, rates, prompt_tokens=[3, 3], generated=[2, 2], batch_size=2)
    apart = floor.round_floor(work, rates, prompt_tokens=[3, 3], generated=[2, 2], batch_size=1)
    assert batched.memory_s < apart.memory_s == pytest.approx(2 * one.memory_s)  # weights read once per step
    assert batched.compute_s == pytest.approx(apart.compute_s)
    early = floor.round_floor(work, rates, prompt_tokens=[3, 3], generated=[2, 0], batch_size=2)
    assert early.compute_s < batched.compute_s and early.generated_tokens == 2  # a finished row costs nothing
