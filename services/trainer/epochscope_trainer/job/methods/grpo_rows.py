"""A row as a GRPO prompt: TRL's prompt record plus the row's references, for the reward graders.

The prompt is what a prediction round would ask (`sampler.to_sample`): a chat row's conversation before its last
assistant turn (the whole conversation when it ends in a user turn), a prompt row's prompt (with or without a
completion). The references are the sample's, as a prediction round grades with them: the ground truth (that last
assistant turn, or the completion) and every other field of the row (`label`, ...), by name. They travel as one JSON
text column, `references`: TRL passes dataset columns to reward functions by name, and one text column keeps Arrow's
schema the same for rows with different fields and keeps a row's field names clear of TRL's own keyword arguments.
"""

import json
from collections.abc import Mapping
from typing import Any

from epochscope_runtime.dataset_rows import Example
from epochscope_runtime.sampler import to_sample


def prompt_record(example: Example) -> dict[str, Any]:
    """{"prompt": messages or text, "references": JSON text of {field: text}}."""
    sample = to_sample(example, 0)
    prompt = sample.messages if sample.messages is not None else sample.text
    return {"prompt": prompt, "references": json.dumps(sample.references, ensure_ascii=False)}


def references_of(column_value: str) -> Mapping[str, str]:
    return json.loads(column_value)
