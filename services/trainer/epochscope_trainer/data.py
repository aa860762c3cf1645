"""Read a JSONL dataset in any of the supported row formats, skipping (and counting) malformed rows.

Formats, per row:
- chat: {"messages": [{"role": ..., "content": ...}, ...]}; the prompt is the conversation up to the
  last assistant turn, the ground truth that last assistant turn;
- prompt/completion: {"prompt": str, "completion": str};
- text only: {"text": str}; no ground truth.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = {"system", "user", "assistant", "tool"}


@dataclass(frozen=True)
class Example:
    """One usable row: `row` is its 0-based line number, the source of its stable sample id."""

    row: int
    data: dict[str, Any]


@dataclass
class Dataset:
    examples: list[Example] = field(default_factory=list)
    format: str | None = None  # chat | prompt_completion | text: fixed by the first usable row
    skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1


def load_jsonl(path: Path) -> Dataset:
    """Every well-formed row of the file; raises OSError if the file cannot be read."""
    dataset = Dataset()
    with path.open(encoding="utf-8", errors="replace") as handle:
        for row, line in enumerate(handle):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                dataset.skip("not JSON")
                continue
            problem = row_problem(data)
            if problem:
                dataset.skip(problem)
                continue
            kind = row_format(data)
            dataset.format = dataset.format or kind
            if kind != dataset.format:
                dataset.skip(f"a {kind} row in a {dataset.format} dataset")
            else:
                dataset.examples.append(Example(row, data))
    return dataset


def row_problem(data: object) -> str | None:
    """Why a row cannot be used, or None."""
    if not isinstance(data, dict):
        return "not an object"
    if "messages" in data:
        messages = data["messages"]
        if not isinstance(messages, list) or not messages:
            return "messages is not a non-empty list"
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                return "a message without a known role"
            if not isinstance(message.get("content"), str):
                return "a message without text content"
        return None
    if "prompt" in data or "completion" in data:
        if isinstance(data.get("prompt"), str) and isinstance(data.get("completion"), str) and data["prompt"]:
            return None
        return "prompt/completion must both be strings"
    if isinstance(data.get("text"), str) and data["text"]:
        return None
    return "no messages, prompt/completion or text"


def row_format(data: dict[str, Any]) -> str:
    if "messages" in data:
        return "chat"
    return "prompt_completion" if "prompt" in data else "text"


def training_record(example: Example) -> dict[str, Any]:
    """The row as TRL's SFTTrainer expects it (conversational or standard language modeling)."""
    data = example.data
    if "messages" in data:
        return {"messages": data["messages"]}
    if "prompt" in data:
        return {"prompt": data["prompt"], "completion": data["completion"]}
    return {"text": data["text"]}
