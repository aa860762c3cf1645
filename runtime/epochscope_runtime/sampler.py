"""The fixed, seeded set of rows each prediction round asks the model about.

One implementation for the API (the job form's preview and the estimate) and the trainer (the rounds), so
the preview is exactly the set the job will use.
"""

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from epochscope_runtime.dataset_rows import Example
from epochscope_schemas.graders import GROUND_TRUTH

ROW_TEXT_FIELDS = frozenset({"messages", "prompt", "completion", "text"})  # what the row format itself reads


@dataclass(frozen=True)
class Sample:
    sample_id: str  # stable across rounds and runs: the row's position in its file
    index: int  # position in the sample set
    messages: list[dict[str, Any]] | None  # chat prompt: the conversation before the last assistant turn
    text: str | None  # plain prompt (prompt/completion or text rows)
    ground_truth: str | None
    fields: Mapping[str, str] = field(default_factory=dict)  # the row's other fields (`label`, ...), as text

    @property
    def references(self) -> dict[str, str]:
        """What the graders read (a `reference_field` names one): the ground truth and the row's other fields."""
        truth = {} if self.ground_truth is None else {GROUND_TRUTH: self.ground_truth}
        return {**truth, **self.fields}


def sample_positions(usable_rows: int, count: int, seed: int) -> list[int]:
    """Which usable rows (0-based, in file order) form the prediction set: `count` of them chosen with `seed`."""
    return sorted(random.Random(seed).sample(range(usable_rows), min(count, usable_rows)))


def sample_id_of(row: int) -> str:
    return f"row-{row:06d}"


def select_samples(examples: list[Example], count: int, seed: int) -> list[Sample]:
    """`count` examples chosen with `seed`, in file order; fewer if there are fewer."""
    positions = sample_positions(len(examples), count, seed)
    return [to_sample(examples[position], index) for index, position in enumerate(positions)]


def _text_of(messages: list[dict[str, Any]]) -> str:
    return "".join(message["content"] for message in messages)


def to_sample(example: Example, index: int) -> Sample:
    messages, text, ground_truth = prompt_and_ground_truth(example.data)
    fields = {name: reference_text(value) for name, value in example.data.items() if name not in ROW_TEXT_FIELDS}
    return Sample(sample_id_of(example.row), index, messages, text, ground_truth, fields)


def prompt_and_ground_truth(data: Mapping[str, Any]) -> tuple[list[dict[str, Any]] | None, str | None, str | None]:
    """A usable row's prompt (chat messages, or a plain text) and its ground truth, as a Sample holds them."""
    if "messages" in data:
        messages = data["messages"]
        last_assistant = next((i for i in range(len(messages) - 1, -1, -1) if messages[i]["role"] == "assistant"), None)
        if last_assistant is None:
            return messages, None, None
        return messages[:last_assistant], None, messages[last_assistant]["content"]
    if "prompt" in data:
        answer = data.get("chosen", data.get("completion"))  # a preference row's ground truth is its chosen answer
        if isinstance(data["prompt"], list):  # conversational prompt-completion or preference
            return data["prompt"], None, None if answer is None else _text_of(answer)
        return None, data["prompt"], answer
    return None, data["text"], None


def reference_text(value: Any) -> str:
    """A row field as the text a grader compares with: a string as it is, anything else as its JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
