"""Which training methods can use a row, and why not: one answer for the upload report (per method, in the API's
scan) and the job check (a method with no usable row in its dataset is refused).

- sft trains on an answer: chat, prompt/completion, conversational and text rows; not preference rows (DPO's) or
  prompts without an answer (GRPO's);
- dpo needs a preference row (preference_rows.py);
- grpo needs a prompt, as its trainer reads one (the trainer's grpo_rows.prompt_record asks `to_sample`, whose
  prompt is sampler.prompt_and_ground_truth's): the conversation before a chat row's last assistant turn, a prompt,
  a text row's text; the rest of the row, a preference row's chosen answer included, is the graders' references.
"""

from collections.abc import Callable

from epochscope_runtime.dataset_rows import Example
from epochscope_runtime.sampler import prompt_and_ground_truth
from epochscope_schemas.dataset_formats import RowFormat

PREFERENCE_FORMATS = frozenset({RowFormat.PREFERENCE, RowFormat.CONVERSATIONAL_PREFERENCE})

NOT_PREFERENCE = "not a preference row (prompt, chosen, rejected)"
PREFERENCE_FOR_DPO = "a preference row (for DPO)"
NO_ANSWER = "a prompt without an answer"
NO_PROMPT = "no prompt before the answer"


def _sft_problem(example: Example) -> str | None:
    if example.format in PREFERENCE_FORMATS:
        return PREFERENCE_FOR_DPO
    if "prompt" in example.data and example.data.get("completion") is None:
        return NO_ANSWER
    return None


def _dpo_problem(example: Example) -> str | None:
    return None if example.format in PREFERENCE_FORMATS else NOT_PREFERENCE


def _grpo_problem(example: Example) -> str | None:
    messages, text, _ = prompt_and_ground_truth(example.data)
    return None if messages or text else NO_PROMPT


# Why each training method (a `method.type`) cannot use a usable row, or None.
METHOD_PROBLEMS: dict[str, Callable[[Example], str | None]] = {
    "sft": _sft_problem,
    "dpo": _dpo_problem,
    "grpo": _grpo_problem,
}
