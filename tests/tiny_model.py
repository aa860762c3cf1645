"""A tiny causal LM built from a config (no download): a byte-level BPE tokenizer with a chat template
and a 2-layer Llama with random weights. Small enough to fine-tune for a few steps in seconds on a CPU."""

import json
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from epochscope_runtime.catalog import CatalogModel

TINY_MODEL_ID = "tiny"

SPECIAL_TOKENS = ["<pad>", "<eos>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    'What is the capital of France? Paris. The answer is 42. {"city": "Paris", "country": "FR"}',
    "0 1 2 3 4 5 6 7 8 9 10 plus minus times equals question answer hello world",
]


def build_tiny_model(
    directory: Path, seed: int = 0, hidden_size: int = 32, intermediate_size: int = 64, layers: int = 2
) -> Path:
    """Write a tokenizer and a randomly initialised tiny Llama to `directory` and return it (wider and deeper
    when asked: a benchmark's checkpoint of a realistic size)."""
    import torch

    torch.manual_seed(seed)
    tokenizer_model = Tokenizer(models.BPE(unk_token=None))
    tokenizer_model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer_model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer_model.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_model, pad_token="<pad>", eos_token="<eos>", chat_template=CHAT_TEMPLATE
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def tiny_catalog(model_dir: Path) -> list[CatalogModel]:
    """The tests' model catalog: the tiny model, loaded by the trainer from its folder."""
    return [
        CatalogModel(
            id=TINY_MODEL_ID,
            display_name="Tiny Llama (tests)",
            source=f"dir:{model_dir}",
            parameters=30_000,
            context_length=256,
            chat_template=True,
            tokens_per_second=200.0,
            tokenizer_dir=str(model_dir),
        )
    ]


def tiny_catalog_file(model_dir: Path, path: Path) -> Path:
    """The tiny model's catalog as a JSON file at `path`, the form `epochscope up --models` and the benches' `--models`
    read."""
    path.write_text(json.dumps([model.model_dump(mode="json") for model in tiny_catalog(model_dir)]))
    return path


def spread_tiny_model(model_dir: Path) -> tuple[Any, Any]:
    """The tiny model with its weights spread wide (seeded), and its tokenizer: as built it repeats a prompt's last
    token whatever came before; spread, its answers depend on every token and every row."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" not in name:
                parameter.normal_(0.0, 0.3)
    return model, AutoTokenizer.from_pretrained(model_dir)
