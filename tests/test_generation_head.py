"""A round's generation runs the output projection on oneDNN's kernel (CPU, fp32): the same greedy answers as the
plain projection gives, the model's own head back afterwards, and any other head left as it is. The tiny model, no
broker, no database."""

from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_model import spread_tiny_model
from torch import nn
from transformers import AutoModelForCausalLM

from epochscope_trainer.job import generation_head
from epochscope_trainer.job.generation import GenerationSettings, generate, inference_mode
from epochscope_trainer.job.generation_head import OneDnnLinear, onednn_runs

PROMPTS = ["What is 1 plus 1?", "Hi", "What is the capital of France? Tell me please, in detail.", "2", "4 times 4"]
GREEDY = GenerationSettings(max_new_tokens=12, temperature=0.0, top_p=1.0, seed=0, batch_size=3)

pytestmark = pytest.mark.skipif(not onednn_runs(nn.Linear(2, 2)), reason="no oneDNN linear kernel in this torch")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    return spread_tiny_model(tiny_model_dir)


def test_the_layer_computes_the_linear_projection_of_every_row() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(16, 40)
    x = torch.randn(3, 5, 16)
    with torch.inference_mode():
        for rows in (x, x[:, -1:, :], x[0]):  # the prefill's last position is a strided slice
            out = OneDnnLinear(layer.weight, layer.bias)(rows)
            assert out.shape == (*rows.shape[:-1], 40)
            torch.testing.assert_close(out, layer(rows), rtol=1e-5, atol=1e-5)


def test_answers_are_the_plain_projections(tiny: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    model, tokenizer = tiny
    with monkeypatch.context() as patch:
        patch.setattr(generation_head, "onednn_runs", lambda layer: False)
        plain = [g.text for g in generate(model, tokenizer, PROMPTS, GREEDY)]
    assert len(set(plain)) == len(PROMPTS)  # every row answers its own prompt: rows mixed up would show
    assert [g.text for g in generate(model, tokenizer, PROMPTS, GREEDY)] == plain


def test_the_head_is_swapped_within_and_put_back(tiny: tuple[Any, Any]) -> None:
    model, _ = tiny
    head = model.get_output_embeddings()
    with inference_mode(model):
        within = model.get_output_embeddings()
        assert isinstance(within, OneDnnLinear)
        assert within.weight is head.weight  # the same tensor: nothing copied, nothing written
    assert model.get_output_embeddings() is head
    assert type(head) is nn.Linear


def test_only_a_plain_fp32_linear_on_the_cpu_runs_on_onednn() -> None:
    assert onednn_runs(nn.Linear(4, 4))
    assert not onednn_runs(nn.Linear(4, 4, dtype=torch.bfloat16))
    assert not onednn_runs(nn.Embedding(4, 4))


def test_a_head_that_does_not_qualify_is_left_as_it_is(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    head = model.get_output_embeddings()
    with inference_mode(model):
        assert model.get_output_embeddings() is head
