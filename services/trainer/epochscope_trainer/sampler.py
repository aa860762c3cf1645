"""The fixed, seeded set of examples each prediction round asks the model about."""

import random
from dataclasses import dataclass
from typing import Any

from epochscope_trainer.data import Dataset, Example


@dataclass(frozen=True)
class Sample:
    sample_id: str  # stable across rounds and runs: the row's line number in its file
    index: int  # position in the sample set
    messages: list[dict[str, Any]] | None  # chat prompt: the conversation before the last assistant turn
    text: str | None  # plain prompt (prompt/completion or text rows)
    ground_truth: str | None


def select_samples(dataset: Dataset, count: int, seed: int) -> list[Sample]:
    """`count` examples chosen with `seed`, in file order; fewer if the dataset is smaller."""
    chosen = sorted(random.Random(seed).sample(range(len(dataset.examples)), min(count, len(dataset.examples))))
    return [to_sample(dataset.examples[position], index) for index, position in enumerate(chosen)]


def to_sample(example: Example, index: int) -> Sample:
    data = example.data
    sample_id = f"row-{example.row:06d}"
    if "messages" in data:
        messages = data["messages"]
        last_assistant = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last_assistant is None:
            return Sample(sample_id, index, messages, None, None)
        return Sample(sample_id, index, messages[:last_assistant], None, messages[last_assistant]["content"])
    if "prompt" in data:
        return Sample(sample_id, index, None, data["prompt"], data["completion"])
    return Sample(sample_id, index, None, data["text"], None)


def render_prompt(sample: Sample, tokenizer: Any) -> str:
    """The exact text the model is asked to continue: chat prompts through the tokenizer's chat template."""
    if sample.messages is not None:
        return tokenizer.apply_chat_template(sample.messages, tokenize=False, add_generation_prompt=True)
    return sample.text or ""
