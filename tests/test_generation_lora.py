"""A round's generation folds a LoRA model's adapters into its weights: the same greedy answers as the unfolded
adapters give, and the trained model exactly as it was afterwards. The tiny model, no broker, no database."""

from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora.layer import Linear as LoraLinear
from transformers import AutoModelForCausalLM, AutoTokenizer

from epochscope_trainer.job import generation_lora
from epochscope_trainer.job.generation import GenerationSettings, generate
from epochscope_trainer.job.generation_lora import FoldedLinear, folded_adapters

PROMPTS = ["What is 1 plus 1?", "Hi", "What is the capital of France? Tell me please, in detail.", "2"]
GREEDY = GenerationSettings(max_new_tokens=12, temperature=0.0, top_p=1.0, seed=0, batch_size=3)


@pytest.fixture
def lora_model(tiny_model_dir: Path) -> tuple[Any, Any]:
    """The tiny model with all-linear LoRA adapters as a few training steps leave them: B no longer zero."""
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    model.train()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def unfolded(model: Any, tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The answers as rounds generated them before folding: every adapter run as PEFT runs it."""
    with monkeypatch.context() as patch:
        patch.setattr(generation_lora, "FOLD_MAX_BYTES", 0)
        return [g.text for g in generate(model, tokenizer, PROMPTS, GREEDY)]


def test_folded_adapters_answer_as_the_unfolded_ones(
    lora_model: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = lora_model
    expected = unfolded(model, tokenizer, monkeypatch)
    with model.disable_adapter():
        base_answers = [g.text for g in generate(model, tokenizer, PROMPTS, GREEDY)]
    assert base_answers != expected  # the adapters change the answers: folding them must keep that change
    assert [g.text for g in generate(model, tokenizer, PROMPTS, GREEDY)] == expected


def test_the_trained_model_is_exactly_as_it_was_after_a_round(lora_model: tuple[Any, Any]) -> None:
    model, tokenizer = lora_model
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    layers = sum(isinstance(layer, LoraLinear) for layer in model.modules())
    generate(model, tokenizer, PROMPTS, GREEDY)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert sum(isinstance(layer, LoraLinear) for layer in model.modules()) == layers > 0
    assert not any(isinstance(layer, FoldedLinear) for layer in model.modules())
    assert model.training and all(p.requires_grad == ("lora_" in n) for n, p in model.named_parameters())


def test_every_adapted_layer_is_folded_within_unless_over_the_memory_bound(
    lora_model: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = lora_model
    layers = sum(isinstance(layer, LoraLinear) for layer in model.modules())
    with torch.inference_mode(), folded_adapters(model):
        assert sum(isinstance(layer, FoldedLinear) for layer in model.modules()) == layers
        assert not any(isinstance(layer, LoraLinear) for layer in model.modules())
    monkeypatch.setattr(generation_lora, "FOLD_MAX_BYTES", 0)
    with torch.inference_mode(), folded_adapters(model):
        assert not any(isinstance(layer, FoldedLinear) for layer in model.modules())


def test_adapters_with_a_bias_on_b_are_left_unfolded(tiny_model_dir: Path) -> None:
    """lora_bias adds B's bias too: folding only W + scaling * B @ A would change the answers, so it is not done."""
    config = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_bias=True, task_type="CAUSAL_LM")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), config)
    with torch.inference_mode(), folded_adapters(model):
        assert not any(isinstance(layer, FoldedLinear) for layer in model.modules())


def test_a_model_without_adapters_generates_as_before(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    with torch.inference_mode(), folded_adapters(model):
        assert not any(isinstance(layer, FoldedLinear) for layer in model.modules())
    assert len(generate(model, tokenizer, PROMPTS, GREEDY)) == len(PROMPTS)
