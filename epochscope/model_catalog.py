"""The local stack's model catalog: the demo model by default, with a tokenizer folder the API can count tokens with.

A bundled model ships only as GGUF; the API's `tokenizers` package needs tokenizer.json. So the first start
converts the demo model (as the trainer would on its first job, into the same model cache, so the trainer reuses
it) and copies its tokenizer files into a folder of the API's.
"""

import shutil
from pathlib import Path

from epochscope_schemas.catalog import CatalogModel, demo_catalog

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def with_tokenizers(models: list[CatalogModel] | None, model_cache: Path, tokenizers: Path) -> list[CatalogModel]:
    """The catalog (default: the demo catalog), each bundled model without a tokenizer_dir given one."""
    prepared = []
    for model in models if models is not None else demo_catalog():
        kind, _, name = model.source.partition(":")
        if kind == "bundled" and model.tokenizer_dir is None:
            tokenizer_dir = _tokenizer_of_bundled(name, model_cache, tokenizers)
            model = model.model_copy(update={"tokenizer_dir": str(tokenizer_dir)})
        prepared.append(model)
    return prepared


def _tokenizer_of_bundled(name: str, model_cache: Path, tokenizers: Path) -> Path:
    target = tokenizers / name
    if (target / "tokenizer.json").exists():
        return target
    from epochscope_trainer.model_loading import resolve_model  # transformers: only on the first start

    converted = Path(resolve_model(f"bundled:{name}", model_cache))
    partial = target.with_name(f"{name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for filename in TOKENIZER_FILES:
        if (converted / filename).exists():
            shutil.copy2(converted / filename, partial / filename)
    partial.rename(target)
    return target
