"""The text a prediction round asks the model to continue, for one sample of the shared sampler."""

from typing import Any

from epochscope_runtime.sampler import Sample


def render_prompt(sample: Sample, tokenizer: Any) -> str:
    """The exact text the model is asked to continue: chat prompts through the tokenizer's chat template."""
    if sample.messages is not None:
        return tokenizer.apply_chat_template(sample.messages, tokenize=False, add_generation_prompt=True)
    return sample.text or ""
