"""Preference rows (for DPO), in the formats people have them, checked and normalised to one shape.

Accepted:
- TRL's explicit-prompt preference: {"prompt": str, "chosen": str, "rejected": str} (text), or the same keys as
  lists of messages (conversational: the prompt a conversation, chosen and rejected each a list of assistant turns);
- OpenAI's preference fine-tuning format: {"input": {"messages": [...]}, "preferred_output": [assistant message],
  "non_preferred_output": [assistant message]}.

Every usable row becomes {"prompt", "chosen", "rejected"} (TRL's shape) with messages reduced to role and content;
the row's other fields are kept beside them (references a grader may name).
"""

from typing import Any

from epochscope_runtime.row_messages import messages_problem
from epochscope_schemas.dataset_formats import RowFormat

TRL_KEYS = ("prompt", "chosen", "rejected")
OPENAI_KEYS = ("input", "preferred_output", "non_preferred_output")
_MARKERS = frozenset({"chosen", "rejected", "preferred_output", "non_preferred_output"})


def is_preference_row(data: dict[str, Any]) -> bool:
    """Whether the row is meant as a preference row (it names a chosen or rejected answer)."""
    return not _MARKERS.isdisjoint(data)


def _openai_problem(data: dict[str, Any]) -> str | None:
    if not all(key in data for key in OPENAI_KEYS):
        return "a preference row needs input, preferred_output and non_preferred_output (OpenAI's format)"
    source = data["input"]
    if not isinstance(source, dict):
        return "input is not an object with messages"
    return (
        messages_problem(source.get("messages"), "input.messages")
        or messages_problem(data["preferred_output"], "preferred_output", assistant_only=True)
        or messages_problem(data["non_preferred_output"], "non_preferred_output", assistant_only=True)
    )


def _trl_problem(data: dict[str, Any]) -> str | None:
    if not all(key in data for key in TRL_KEYS):
        return "a preference row needs prompt, chosen and rejected"
    prompt, chosen, rejected = (data[key] for key in TRL_KEYS)
    if all(isinstance(value, str) for value in (prompt, chosen, rejected)):
        return None if prompt and chosen and rejected else "prompt, chosen and rejected must not be empty"
    if all(isinstance(value, list) for value in (prompt, chosen, rejected)):
        return (
            messages_problem(prompt, "prompt")
            or messages_problem(chosen, "chosen", assistant_only=True)
            or messages_problem(rejected, "rejected", assistant_only=True)
        )
    return "prompt, chosen and rejected must all be text or all lists of messages"


def preference_problem(data: dict[str, Any]) -> str | None:
    """Why a preference row cannot be used, or None."""
    if "input" in data or "preferred_output" in data or "non_preferred_output" in data:
        problem = _openai_problem(data)
    else:
        problem = _trl_problem(data)
    if problem is None and normalised_preference(data)["chosen"] == normalised_preference(data)["rejected"]:
        return "chosen and rejected are the same answer"
    return problem


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Role and content only: rows are written to Arrow, whose columns take the fields of the first rows."""
    return [{"role": message["role"], "content": message["content"]} for message in messages]


def normalised_preference(data: dict[str, Any]) -> dict[str, Any]:
    """A usable preference row (preference_problem is None) as {"prompt", "chosen", "rejected", other fields}."""
    if "input" in data:
        others = {key: value for key, value in data.items() if key not in OPENAI_KEYS}
        pair = (data["input"]["messages"], data["preferred_output"], data["non_preferred_output"])
    else:
        others = {key: value for key, value in data.items() if key not in TRL_KEYS}
        pair = tuple(data[key] for key in TRL_KEYS)
    shaped = [value if isinstance(value, str) else _plain(value) for value in pair]
    return {**others, **dict(zip(TRL_KEYS, shaped, strict=True))}


def preference_format(data: dict[str, Any]) -> RowFormat:
    """The format of a normalised preference row: text or conversational."""
    return RowFormat.PREFERENCE if isinstance(data["prompt"], str) else RowFormat.CONVERSATIONAL_PREFERENCE
