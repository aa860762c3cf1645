"""The local stack's model catalog: the demo model by default, with a tokenizer folder the API can count tokens with.

A bundled model ships only as GGUF; the API's `tokenizers` package needs tokenizer.json. So the first start
extracts the tokenizer (and its chat template) from the GGUF into a folder of the API's: about ten seconds once,
not the model's whole conversion, which the trainer does on its first job. A stack started for a job at once (the
demo) converts the model into the trainers' model cache instead, as that first job would (about half a minute,
once), and the API reads the tokenizer from there.
"""

import shutil
from pathlib import Path

from epochscope_runtime.catalog import CatalogModel, demo_catalog
from epochscope_schemas.events import ModelSource


def with_tokenizers(
    models: list[CatalogModel] | None, tokenizers: Path, model_cache: Path | None = None
) -> list[CatalogModel]:
    """The catalog (default: the demo catalog), each bundled model without a tokenizer_dir given one; with
    `model_cache` (the trainers' cache), each bundled model converted into it first."""
    prepared = []
    for model in models if models is not None else demo_catalog():
        kind, _, name = model.source.partition(":")
        if kind == "bundled" and model.tokenizer_dir is None:
            if model_cache is None:
                tokenizer_dir = _tokenizer_of_bundled(name, tokenizers)
            else:
                tokenizer_dir = _converted(model, model_cache)
            model = model.model_copy(update={"tokenizer_dir": str(tokenizer_dir)})
        prepared.append(model)
    return prepared


def _converted(model: CatalogModel, model_cache: Path) -> Path:
    """The bundled model's folder in the trainers' cache (tokenizer included), converted by the trainer's own code."""
    from epochscope_trainer.job.model_loading import resolve_model  # imports transformers: only when needed

    return Path(resolve_model(ModelSource(id=model.id, source=model.source), model_cache))


def _tokenizer_of_bundled(name: str, tokenizers: Path) -> Path:
    target = tokenizers / name
    if (target / "tokenizer.json").exists():
        return target
    from transformers import AutoTokenizer  # only on the first start

    from epochscope_trainer.job.model_loading import bundled_gguf_path

    gguf = bundled_gguf_path(name)
    partial = target.with_name(f"{name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(partial)
    partial.rename(target)
    return target
